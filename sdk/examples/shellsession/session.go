package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

const (
	// readyTimeout bounds the shell's answer to the prelude. A shell
	// answers in about a millisecond, so OpenSession can wait for it; a
	// CLI that takes seconds to start should return at once and report
	// SessionReady later (plugins/codex does).
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
	env              []string
	ready            sdk.SessionReady
}

// session is one agent's shell. Three goroutines serve it: run reads the
// shell's output and reports its end, writeInput feeds its stdin, and the
// cancel timers escalate. mu orders everything they and Send and Close do,
// so events come out in a valid order.
type session struct {
	events    sdk.EventSink
	sh        *shell
	command   string
	head      string // the markers' prefix, random per session
	cancelDir string
	ready     sdk.SessionReady

	readyCh    chan error    // the answer to the prelude, or why none came
	writerDone chan struct{} // writeInput returned
	done       chan struct{} // run returned: the shell and all it started are gone

	mu        sync.Mutex
	wake      *sync.Cond // signalled when input is queued or the session stops
	input     []string   // shell code for writeInput, in order
	isReady   bool
	early     strings.Builder // output before the ready marker, for errors
	turn      *turn           // the running turn, or nil
	turns     int
	closing   bool   // Close was called: no more input
	ended     bool   // the shell is gone: nothing more is written
	killedWhy string // why the backend killed the shell, if it did
	exitOnce  sync.Once
}

// turn is a running turn.
type turn struct {
	id         string
	chunks     int  // chunks written; the marker of the last one ends the turn
	cancelled  bool // a cancel was answered DeliveryCancelled
	escalate   *time.Timer
	cancelAt   time.Time // when the cancel was asked for
	transcript *os.File
	lastLine   string
}

// openSession starts the shell and waits until it answered the prelude.
func openSession(ctx context.Context, st settings, events sdk.EventSink) (*session, error) {
	cancelDir, err := os.MkdirTemp("", "shellsession-")
	if err != nil {
		return nil, err
	}
	sh, err := startShell(st)
	if err != nil {
		_ = os.RemoveAll(cancelDir)
		return nil, fmt.Errorf("%w: starting %q in %q: %v", sdk.ErrInvalidConfig, st.command, st.workdir, err)
	}
	s := &session{
		events:     events,
		sh:         sh,
		command:    st.command,
		head:       "__tthost_" + randomHex(),
		cancelDir:  cancelDir,
		ready:      st.ready,
		readyCh:    make(chan error, 1),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.wake = sync.NewCond(&s.mu)
	s.input = []string{prelude(cancelDir), readyCode(s.head)}
	go s.writeInput()
	go s.run()

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case err = <-s.readyCh:
	case <-timer.C:
		err = fmt.Errorf("%w: %q did not answer like a POSIX shell within %v; configure a shell such as sh or bash",
			sdk.ErrInvalidConfig, st.command, readyTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.abort()
		return nil, err
	}
	return s, nil
}

// abort ends a session that never became ready. It emits nothing: the
// host never saw the session.
func (s *session) abort() {
	s.mu.Lock()
	s.closing = true
	s.wake.Broadcast()
	s.mu.Unlock()
	s.sh.kill()
	<-s.done
}

// Send starts a turn, steers into the running one, or cancels it.
func (s *session) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.ended {
		return sdk.Delivery{}, fmt.Errorf("%w: the session has ended", sdk.ErrSessionNotFound)
	}
	if strings.ContainsRune(in.Text, 0) {
		return sdk.Delivery{}, fmt.Errorf("%w: the text contains a NUL byte, which a shell cannot read", sdk.ErrInvalidConfig)
	}
	t := s.turn
	switch in.Kind {
	case sdk.InputCancel:
		if t == nil {
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		s.cancelLocked(t)
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: t.id}, nil
	case sdk.InputUrgent:
		if t == nil {
			return s.startLocked(in), nil // nothing to steer into: a new turn
		}
		if t.cancelled {
			// The shell skips the chunks of a cancelled turn: the input
			// would be lost. The host sends it again as a new turn.
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s is being cancelled", sdk.ErrTurnRunning, t.id)
		}
		t.chunks++
		s.queueLocked(chunkCode(s.head, t.id, t.chunks, in.Text))
		return sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: t.id}, nil
	case sdk.InputTurn:
		if t != nil {
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s has not finished", sdk.ErrTurnRunning, t.id)
		}
		return s.startLocked(in), nil
	}
	return sdk.Delivery{}, fmt.Errorf("%w: input kind %v", sdk.ErrUnsupported, in.Kind)
}

func (s *session) startLocked(in sdk.Input) sdk.Delivery {
	s.turns++
	t := &turn{id: "t" + strconv.Itoa(s.turns), chunks: 1}
	s.turn = t
	// Emitted under the lock, so no output of the turn can come first.
	s.events.Emit(sdk.TurnStartedEvent(t.id))
	if in.TranscriptPath != "" {
		f, err := openTranscript(in.TranscriptPath)
		if err != nil {
			// Not fatal: the output still reaches the host as events.
			s.events.Emit(sdk.ErrorEvent(t.id, "transcript_failed", err.Error(), false))
		}
		t.transcript = f
	}
	s.queueLocked(chunkCode(s.head, t.id, 1, in.Text))
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}
}

// cancelLocked interrupts the turn's running command like Ctrl-C, and
// escalates if that is not enough.
func (s *session) cancelLocked(t *turn) {
	if t.cancelled {
		return
	}
	t.cancelled = true
	// The file first, then the signal: see prelude.
	if err := os.WriteFile(filepath.Join(s.cancelDir, t.id), nil, 0o600); err != nil {
		plugin.Logger().Warn("cancel file", "error", err)
	}
	s.sh.signal(syscall.SIGINT)
	t.cancelAt = time.Now()
	t.escalate = time.AfterFunc(sigintRepeat, func() { s.escalateCancel(t, 0) })
}

// escalateCancel runs while a cancelled turn has not ended: step 0 sends
// SIGINT again (see sigintRepeat) until cancelGrace has passed; then a
// command that ignores SIGINT is the reason (step 1: kill every process
// but the shell, whose trap then ends the chunk), or the shell itself does
// not come back (step 2: kill it; the session ends).
func (s *session) escalateCancel(t *turn, step int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.turn != t {
		return // it ended
	}
	if step == 0 {
		if time.Since(t.cancelAt) < cancelGrace {
			s.sh.signal(syscall.SIGINT)
			t.escalate = time.AfterFunc(sigintRepeat, func() { s.escalateCancel(t, 0) })
			return
		}
		step = 1
	}
	if step == 1 {
		plugin.Logger().Info("a cancelled turn did not end on SIGINT; killing the shell's commands", "turn", t.id)
		s.sh.killChildren()
		t.escalate = time.AfterFunc(cancelGrace, func() { s.escalateCancel(t, 2) })
		return
	}
	s.killedWhy = fmt.Sprintf("the shell did not end cancelled turn %s within %v and was killed", t.id, 2*cancelGrace)
	s.sh.kill()
}

// Close ends the session. Graceful: stdin is closed, so the shell runs
// what it was given, then exits; ctx's deadline bounds that. Immediate:
// the shell is killed. Either way it returns once every process of the
// session is gone and Exited was emitted; later calls wait the same way.
func (s *session) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	s.closing = true
	s.wake.Broadcast() // writeInput writes what is queued, then closes stdin
	s.mu.Unlock()

	if mode == sdk.CloseImmediate {
		s.sh.kill()
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.sh.kill()
		<-s.done
	}
	s.mu.Lock()
	s.exitedLocked(sdk.ExitInfo{Reason: sdk.ExitClosed})
	s.mu.Unlock()
	return nil
}

// exitedLocked emits Exited, once: the shell's death and Close both want
// to, and the first one tells why.
func (s *session) exitedLocked(info sdk.ExitInfo) {
	s.exitOnce.Do(func() { s.events.Emit(sdk.ExitedEvent(info)) })
}

func (s *session) queueLocked(code string) {
	s.input = append(s.input, code)
	s.wake.Signal()
}

// writeInput feeds the shell's stdin in the order Send queued the code. It
// runs apart from Send so that a shell busy with a long command (not
// reading) never blocks Send, nor the output reader behind it.
func (s *session) writeInput() {
	defer close(s.writerDone)
	// EOF on stdin: a shell exits once it ran everything before it.
	defer s.sh.stdin.Close()
	for {
		s.mu.Lock()
		for len(s.input) == 0 && !s.closing && !s.ended {
			s.wake.Wait()
		}
		batch := s.input
		s.input = nil
		stop := s.ended || len(batch) == 0
		s.mu.Unlock()
		if stop {
			return
		}
		for _, code := range batch {
			if _, err := io.WriteString(s.sh.stdin, code); err != nil {
				return // the shell is gone; run reports it
			}
		}
	}
}

// run reads the shell's output until it ends, then reports the end. It
// owns the session's last events: every TurnCompleted and, when the shell
// dies on its own, the fatal Error and Exited.
func (s *session) run() {
	defer close(s.done)
	defer os.RemoveAll(s.cancelDir)
	out := newOutputReader(s.sh.output, s.head)
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
	_ = s.sh.output.Close()
	<-s.sh.gone
	s.mu.Lock()
	s.ended = true
	s.wake.Broadcast()
	s.mu.Unlock()
	<-s.writerDone
	s.shellGone()
}

func (s *session) onMarker(m marker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.turn == readyTurn && !s.isReady {
		s.isReady = true
		s.events.Emit(sdk.SessionReadyEvent(s.ready))
		s.events.Emit(sdk.AwaitingInputEvent())
		s.readyCh <- nil
		return
	}
	t := s.turn
	if t == nil || m.turn != t.id || m.chunk != t.chunks {
		return // an earlier chunk of a steered turn
	}
	s.completeLocked(t, outcome(m.status))
	// A closing session takes no more input, so it does not claim to
	// await any; Exited follows instead.
	if !s.closing {
		s.events.Emit(sdk.AwaitingInputEvent())
	}
}

func (s *session) onOutput(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isReady {
		if s.early.Len() < 2048 {
			s.early.WriteString(text)
		}
		return
	}
	t := s.turn
	if t == nil {
		// A background job printing between turns: no turn to give it to.
		plugin.Logger().Debug("shell output outside a turn", "text", text)
		return
	}
	s.events.Emit(sdk.DeltaEvent(t.id, text))
	if t.transcript != nil {
		if _, err := io.WriteString(t.transcript, text); err != nil {
			s.events.Emit(sdk.ErrorEvent(t.id, "transcript_failed",
				fmt.Sprintf("writing the transcript: %v; the rest of the output is only in the events", err), false))
			_ = t.transcript.Close()
			t.transcript = nil
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			t.lastLine = l
		}
	}
}

// shellGone reports the shell's end: a failed open, a close, or a death.
func (s *session) shellGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	code, signal, desc := s.sh.exitInfo()
	if !s.isReady {
		printed := ""
		if out := strings.TrimSpace(s.early.String()); out != "" {
			printed = "; it printed: " + out
		}
		s.readyCh <- fmt.Errorf("%w: %q ended before it answered like a POSIX shell (%s)%s",
			sdk.ErrInvalidConfig, s.command, desc, printed)
		return
	}
	t := s.turn
	if s.closing {
		if t != nil {
			s.completeLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "the session was closed"})
		}
		return
	}
	// The shell died on its own (or the backend killed it): a fatal Error
	// first, then the running turn fails, then Exited. The host reads a
	// turn failed after a fatal error as "the runtime died, not the work".
	why := s.killedWhy
	if why == "" {
		why = "the shell exited (" + desc + ")"
	}
	s.events.Emit(sdk.ErrorEvent("", "shell_exited", why, true))
	if t != nil {
		s.completeLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: why, ExitCode: code})
	}
	s.exitedLocked(sdk.ExitInfo{ExitCode: code, Signal: signal, Reason: sdk.ExitCLIExited})
}

// completeLocked ends the turn with its one TurnCompleted. A turn whose
// cancel was answered DeliveryCancelled always ends interrupted, whatever
// raced the cancel.
func (s *session) completeLocked(t *turn, c sdk.TurnCompleted) {
	if t.escalate != nil {
		t.escalate.Stop()
	}
	if t.cancelled && c.Status != sdk.StatusInterrupted {
		c = sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled", ExitCode: c.ExitCode}
	}
	if c.Summary == "" {
		c.Summary = truncate(t.lastLine, summaryMax)
	}
	if t.transcript != nil {
		_ = t.transcript.Close()
	}
	s.events.Emit(sdk.TurnCompletedEvent(t.id, c))
	s.turn = nil
}

// outcome maps a chunk's exit status to the turn's outcome.
func outcome(status int) sdk.TurnCompleted {
	if status == 0 {
		return sdk.TurnCompleted{Status: sdk.StatusCompleted, ExitCode: sdk.IntPtr(0)}
	}
	return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: fmt.Sprintf("exit status %d", status), ExitCode: sdk.IntPtr(status)}
}

func openTranscript(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return f, nil
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
