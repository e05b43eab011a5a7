package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// Gemini CLI's quirks (docs/compatibility.md, "ACP agents").
//
// session/load records a new chat file named after the current wall-clock
// minute (UTC) and the session id's first 8 characters before it reads
// the session: loaded within the minute the session's own file is named
// after, it writes into that file and erases the conversation it was
// asked to load (google-gemini/gemini-cli#28775). `--resume` does not help
// in ACP mode (gemini ignores it there). So the load waits until the
// minute has turned.

// geminiMinute is the layout of the minute in gemini's chat file names.
const geminiMinute = "2006-01-02T15-04"

// geminiLoadGuard waits, before session/load of id, until no chat file of
// id is named after the current minute, and records why it waited.
func (s *session) geminiLoadGuard(ctx context.Context, id string) error {
	if len(id) < 8 {
		return nil
	}
	home := s.cfg.getenv("GEMINI_CLI_HOME")
	if home == "" {
		home = s.cfg.getenv("HOME")
	}
	if home == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(home, ".gemini", "tmp", "*", "chats", "session-*-"+globEscape(id[:8])+".jsonl"))
	minutes := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		const prefix = len("session-")
		if len(name) >= prefix+len(geminiMinute) {
			minutes[name[prefix:prefix+len(geminiMinute)]] = true
		}
	}
	now := s.now().UTC()
	if !minutes[now.Format(geminiMinute)] {
		return nil
	}
	// A little past the turn of the minute: gemini reads the clock later.
	next := now.Truncate(time.Minute).Add(time.Minute + 500*time.Millisecond)
	wait := next.Sub(now)
	s.mu.Lock()
	s.loadWaitNote = fmt.Sprintf("session %s was written within this minute; Gemini CLI erases a session loaded within the minute its file is named after (google-gemini/gemini-cli#28775), so the load waited %v", id, wait.Round(time.Millisecond))
	s.mu.Unlock()
	s.log.Info("waiting for the minute to turn before gemini loads the session", "session", id, "wait", wait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// globEscape quotes the glob metacharacters of s.
func globEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
