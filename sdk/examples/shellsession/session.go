package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

const (
	// readyTimeout bounds the shell's answer to the prelude: a command that
	// is not a shell never gives one.
	readyTimeout = 10 * time.Second
	// cancelGrace is how long a cancelled turn may take to end before the
	// next, harder step.
	cancelGrace = 2 * time.Second
	// sigintRepeat: a SIGINT that lands between the shell's fork and the
	// exec of a command is lost (the forked shell's handler takes it, and
	// the shell runs its own trap only once the command ends), so a cancel
	// repeats the signal this often until the turn ends or cancelGrace
	// passes.
	sigintRepeat = 100 * time.Millisecond
	// summaryMax bounds TurnCompleted.Summary, the turn's last output line.
	summaryMax = 200
)

// settings is what a session needs from its SessionConfig.
type settings struct {
	command, workdir string
	env              map[string]string
	ready            sdk.SessionReady
}

// session is one agent's shell: a plugin.Session, which keeps the
// contract, driven by this shell's protocol. The goroutine run reads the
// shell's output: markers end a turn's chunks (Turn.Answered: a steer is
// one more chunk, and the turn ends at the marker of its last), the rest is
// the running turn's output.
type session struct {
	*plugin.Session
	sh        *plugin.Process
	command   string
	head      string // the markers' prefix, random per session
	cancelDir string
	ready     sdk.SessionReady
	readyCh   chan error // the answer to the prelude, or why none came

	mu         sync.Mutex
	isReady    bool
	early      strings.Builder // output before the ready marker, for errors
	chunks     int             // chunks written for the running turn
	lastLine   string          // the running turn's last output line
	escalating string          // the turn whose cancel escalates
	killedWhy  string          // why the backend killed the shell, if it did
}

// openSession starts the shell; the Session waits for its answer to the
// prelude in the background (start).
func openSession(st settings, events sdk.EventSink) (*session, error) {
	cancelDir, err := os.MkdirTemp("", "shellsession-")
	if err != nil {
		return nil, err
	}
	// `exec`, so that the shell is the process (and group) leader. The
	// Process starts it in a group of its own (a signal to the group
	// reaches the shell and every command it runs in the foreground), tags
	// it, and kills by the tag what the shell leaves behind.
	sh, err := plugin.StartProcess(plugin.ProcessConfig{Command: "exec " + st.command, Dir: st.workdir, Env: st.env})
	if err != nil {
		_ = os.RemoveAll(cancelDir)
		return nil, fmt.Errorf("%w: starting %q in %q: %v", sdk.ErrInvalidConfig, st.command, st.workdir, err)
	}
	s := &session{
		sh:        sh,
		command:   st.command,
		head:      "__tthost_" + randomHex(),
		cancelDir: cancelDir,
		ready:     st.ready,
		readyCh:   make(chan error, 1),
	}
	s.Session = plugin.NewSession(events, plugin.Driver{
		Start:     s.start,
		StartTurn: s.startTurn,
		Steer:     s.steer,
		Cancel:    s.cancel,
		// Graceful: stdin closed, so the shell runs what it was given and
		// exits. Immediate: SIGTERM to the group, then SIGKILL and the tag.
		Stop: sh.Close,
	})
	go s.run()
	return s, nil
}

// start writes the prelude and waits for the shell's answer, so a command
// that is not a shell fails the session with a clear error.
func (s *session) start(ctx context.Context) (sdk.SessionReady, error) {
	// A write that fails means the shell has ended: run says how.
	_, _ = s.sh.WriteString(prelude(s.cancelDir) + readyCode(s.head))
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case err := <-s.readyCh:
		return s.ready, err
	case <-timer.C:
		return sdk.SessionReady{}, fmt.Errorf("%q did not answer like a POSIX shell within %v; configure a shell such as sh or bash",
			s.command, readyTimeout)
	case <-ctx.Done():
		return sdk.SessionReady{}, ctx.Err()
	}
}

// startTurn writes the turn's text as its first chunk.
func (s *session) startTurn(_ context.Context, t *plugin.Turn, text string) error {
	s.mu.Lock()
	s.chunks, s.lastLine = 1, ""
	s.mu.Unlock()
	return s.write(chunkCode(s.head, t.ID(), 1, text), text)
}

// steer writes urgent input as one more chunk of the running turn: it runs
// after the commands before it, and the turn ends at its marker.
func (s *session) steer(_ context.Context, t *plugin.Turn, text string) error {
	s.mu.Lock()
	s.chunks++
	n := s.chunks
	s.mu.Unlock()
	return s.write(chunkCode(s.head, t.ID(), n, text), text)
}

func (s *session) write(code, text string) error {
	if strings.ContainsRune(text, 0) {
		return fmt.Errorf("%w: the text contains a NUL byte, which a shell cannot read", sdk.ErrInvalidConfig)
	}
	_, err := s.sh.WriteString(code)
	return err
}

// cancel interrupts the turn's running command like Ctrl-C: the file
// first, then the signal (see prelude), and escalates if that is not
// enough.
func (s *session) cancel(_ context.Context, t *plugin.Turn) error {
	if err := os.WriteFile(filepath.Join(s.cancelDir, t.ID()), nil, 0o600); err != nil {
		plugin.Logger().Warn("cancel file", "error", err)
	}
	if err := s.sh.Signal(syscall.SIGINT); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.escalating != t.ID() {
		s.escalating = t.ID()
		go s.escalate(t)
	}
	return nil
}

// escalate runs while a cancelled turn has not ended: SIGINT again (see
// sigintRepeat) until cancelGrace has passed; then a command that ignores
// SIGINT is the reason (kill every process but the shell, whose trap then
// ends the chunk), or the shell itself does not come back (kill it; the
// session ends).
func (s *session) escalate(t *plugin.Turn) {
	repeat := time.NewTicker(sigintRepeat)
	defer repeat.Stop()
	grace := time.NewTimer(cancelGrace)
	for waiting := true; waiting; {
		select {
		case <-t.Done():
			return
		case <-repeat.C:
			_ = s.sh.Signal(syscall.SIGINT)
		case <-grace.C:
			waiting = false
		}
	}
	plugin.Logger().Info("a cancelled turn did not end on SIGINT; killing the shell's commands", "turn", t.ID())
	for _, pid := range s.sh.Tag().Alive() {
		if pid != s.sh.Pid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	grace.Reset(cancelGrace)
	select {
	case <-t.Done():
		return
	case <-grace.C:
	}
	s.mu.Lock()
	s.killedWhy = fmt.Sprintf("the shell did not end cancelled turn %s within %v and was killed", t.ID(), 2*cancelGrace)
	s.mu.Unlock()
	s.sh.Kill()
}

// run reads the shell's output until it ends, then reports the end: a
// start that failed, or the shell's death (the Session knows whether it
// was closing).
func (s *session) run() {
	out := newOutputReader(s.sh.Output(), s.head)
	for {
		text, m, err := out.next()
		switch {
		case m != nil:
			s.onMarker(*m)
		case text != "":
			s.onOutput(text)
		}
		if err != nil {
			break
		}
	}
	<-s.sh.Done()
	_ = os.RemoveAll(s.cancelDir)
	s.mu.Lock()
	ready, early, why := s.isReady, strings.TrimSpace(s.early.String()), s.killedWhy
	s.mu.Unlock()
	if !ready {
		if early != "" {
			early = "; it printed: " + early
		}
		s.readyCh <- fmt.Errorf("%q ended before it answered like a POSIX shell (%s)%s", s.command, s.sh.Status(), early)
		return
	}
	if why == "" {
		why = "the shell exited (" + s.sh.Status() + ")"
	}
	s.Lost(errors.New(why))
}

func (s *session) onMarker(m marker) {
	s.mu.Lock()
	if m.turn == readyTurn && !s.isReady {
		s.isReady = true
		s.mu.Unlock()
		s.readyCh <- nil
		return
	}
	summary := truncate(s.lastLine, summaryMax)
	s.mu.Unlock()
	if t := s.Running(); t != nil && t.ID() == m.turn {
		t.Answered(outcome(m.status, summary))
	}
}

func (s *session) onOutput(text string) {
	s.mu.Lock()
	if !s.isReady {
		if s.early.Len() < 2048 {
			s.early.WriteString(text)
		}
		s.mu.Unlock()
		return
	}
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			s.lastLine = l
		}
	}
	s.mu.Unlock()
	if t := s.Running(); t != nil {
		t.Output(text)
	} else {
		// A background job printing between turns: no turn to give it to.
		plugin.Logger().Debug("shell output outside a turn", "text", text)
	}
}

// outcome maps a chunk's exit status to the turn's outcome.
func outcome(status int, summary string) sdk.TurnCompleted {
	if status == 0 {
		return sdk.TurnCompleted{Status: sdk.StatusCompleted, ExitCode: sdk.IntPtr(0), Summary: summary}
	}
	return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: fmt.Sprintf("exit status %d", status), ExitCode: sdk.IntPtr(status), Summary: summary}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
