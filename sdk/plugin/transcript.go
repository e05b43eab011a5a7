package plugin

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// transcriptFlushDelay bounds how long written text waits in a
// Transcript's buffer: the file stays live for a person following it,
// without a write per token.
const transcriptFlushDelay = 200 * time.Millisecond

// Transcript is a turn's log for people: the file a turn's Input names in
// TranscriptPath (the host shows it in .tt/logs/). It is opened when the
// turn is accepted, before the CLI gets the turn's input, so nothing the
// turn says is lost; it is buffered, and flushed at most 200 ms after a
// write, at Flush and at Close.
//
// A nil *Transcript (no path was given) accepts everything and writes
// nothing, so callers need no checks. Every method is safe for concurrent
// use. A Session opens and closes its turns' transcripts itself: see
// Turn.Transcript.
type Transcript struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	bol   bool  // at the beginning of a line
	err   error // the first error; later writes are skipped
	timer *time.Timer
	shut  bool
}

// OpenTranscript creates the file at path, with its directory, or
// truncates it. An empty path returns a nil Transcript and no error.
func OpenTranscript(path string) (*Transcript, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return &Transcript{f: f, w: bufio.NewWriterSize(f, 32<<10), bol: true}, nil
}

// Write appends the CLI's output as it came. It returns the transcript's
// first error, if any: after one, writes are skipped.
func (t *Transcript) Write(p []byte) (int, error) {
	if t == nil {
		return len(p), nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writeLocked(p)
	return len(p), t.err
}

// WriteString is Write of a string.
func (t *Transcript) WriteString(s string) (int, error) { return t.Write([]byte(s)) }

func (t *Transcript) writeLocked(p []byte) {
	if t.err != nil || t.shut || len(p) == 0 {
		return
	}
	_, t.err = t.w.Write(p)
	t.bol = p[len(p)-1] == '\n'
	if t.timer == nil && t.err == nil {
		t.timer = time.AfterFunc(transcriptFlushDelay, func() { _ = t.Flush() })
	}
}

// EndLine ends the current line, if one was started.
func (t *Transcript) EndLine() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bol {
		t.writeLocked([]byte{'\n'})
	}
}

// Note writes a line of the backend's own, in brackets, after ending the
// current line: "[tool command `ls`: completed, exit 0]".
func (t *Transcript) Note(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bol {
		t.writeLocked([]byte{'\n'})
	}
	line := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	t.writeLocked([]byte("[" + line + "]\n"))
}

// Flush writes what is buffered to the file.
func (t *Transcript) Flush() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushLocked()
	return t.err
}

func (t *Transcript) flushLocked() {
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if t.err == nil && !t.shut {
		t.err = t.w.Flush()
	}
}

// Err is the transcript's first error, if any.
func (t *Transcript) Err() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close flushes and closes the file, and returns the transcript's first
// error. Later writes are skipped; closing again returns the same error.
func (t *Transcript) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		return t.err
	}
	t.flushLocked()
	t.shut = true
	if err := t.f.Close(); t.err == nil {
		t.err = err
	}
	return t.err
}
