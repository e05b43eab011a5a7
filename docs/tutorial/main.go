// Command tthost-backend-mycli is the backend plugin that
// docs/plugin-authoring.md builds, step by step: it serves a CLI named
// "mycli" by running the CLI's configured command once per turn, with the
// prompt on stdin, and streams what the command prints. It lives in a
// module of its own, built only against github.com/tthost/tthost/sdk, as a
// third party's plugin would.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

func main() {
	plugin.Serve(backend{})
}

// backend is stateless: every session keeps its own state.
type backend struct{}

func (backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "mycli",
		Version: "0.1.0",
		Summary: "runs mycli once per turn with the prompt on stdin",
		CLIs: []sdk.CLI{{
			Name: "mycli",
			// A turn is a process, so it can be cancelled; nothing lives
			// between turns, so no persistent, steer or resume.
			Capabilities: []sdk.Capability{sdk.CapInterrupt},
		}},
	}, nil
}

func (backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName != "mycli" {
		return nil, fmt.Errorf("%w: this backend serves mycli, not %q", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, fmt.Errorf("%w: no command configured for mycli", sdk.ErrInvalidConfig)
	}
	// The CLI's environment: the plugin's without go-plugin's handshake
	// (a CLI that inherits it takes itself for a plugin), plus the
	// session's. A bad entry is an ErrInvalidConfig.
	env, err := plugin.ChildEnv(cfg.Env)
	if err != nil {
		return nil, err
	}
	events.Emit(sdk.SessionReadyEvent(sdk.SessionReady{}))
	events.Emit(sdk.AwaitingInputEvent())
	return &session{cfg: cfg, env: env, events: events}, nil
}

// session runs one turn at a time. mu orders Send, Close and the end of a
// turn, and so the events they emit.
type session struct {
	cfg    sdk.SessionConfig
	env    []string // the CLI's environment, from plugin.ChildEnv
	events sdk.EventSink

	mu      sync.Mutex
	turns   int
	running *turn // nil when idle
	closed  bool
}

// turn is one run of the command.
type turn struct {
	id        string
	cmd       *exec.Cmd
	tag       plugin.ProcessTag // marks the command and everything it starts
	cancelled bool
	done      chan struct{} // closed once the turn has completed
}

func (s *session) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sdk.Delivery{}, fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
	}
	if in.Kind == sdk.InputCancel {
		if s.running == nil {
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		s.running.cancel()
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: s.running.id}, nil
	}
	// A turn, or urgent input: without steer, both need an idle session.
	if s.running != nil {
		return sdk.Delivery{}, fmt.Errorf("%w: turn %s is running", sdk.ErrTurnRunning, s.running.id)
	}
	s.turns++
	t := &turn{id: fmt.Sprintf("t%d", s.turns), tag: plugin.NewProcessTag(), done: make(chan struct{})}
	s.events.Emit(sdk.TurnStartedEvent(t.id))
	out, err := t.start(s.cfg, s.env, in.Text)
	if err != nil {
		// What goes wrong in a turn is reported in the stream, not as an
		// error of Send.
		s.events.Emit(sdk.TurnCompletedEvent(t.id, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: err.Error()}))
		s.events.Emit(sdk.AwaitingInputEvent())
		return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}, nil
	}
	s.running = t
	go s.run(t, out, in.TranscriptPath)
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}, nil
}

// start runs the command under sh -c in a process group of its own, with
// the prompt on stdin; out carries its stdout and stderr.
func (t *turn) start(cfg sdk.SessionConfig, env []string, prompt string) (io.ReadCloser, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	t.cmd = exec.Command("sh", "-c", cfg.Command)
	t.cmd.Dir = cfg.Workdir
	t.cmd.Env = append(append([]string(nil), env...), t.tag.Env())
	t.cmd.Stdin = strings.NewReader(prompt)
	t.cmd.Stdout, t.cmd.Stderr = pw, pw
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = t.cmd.Start()
	pw.Close() // the child has its copy; EOF comes when every holder is gone
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start %q: %w", cfg.Command, err)
	}
	return pr, nil
}

// cancel asks the command to stop, as Ctrl-C would, and kills what is
// left after a grace period.
func (t *turn) cancel() {
	t.cancelled = true
	_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGTERM)
	go func() {
		select {
		case <-t.done:
		case <-time.After(500 * time.Millisecond):
			_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
			t.tag.Kill(time.Second)
		}
	}()
}

// run streams the output as deltas (and into the transcript), waits for
// the command, and completes the turn.
func (s *session) run(t *turn, out io.ReadCloser, transcriptPath string) {
	var transcript io.Writer = io.Discard
	if transcriptPath != "" {
		f, err := openTranscript(transcriptPath)
		if err != nil {
			// The turn goes on; the host learns why its log is missing.
			s.events.Emit(sdk.ErrorEvent(t.id, "transcript", err.Error(), false))
		} else {
			defer f.Close()
			transcript = f
		}
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		streamUTF8(out, func(text string) {
			s.events.Emit(sdk.DeltaEvent(t.id, text))
			_, _ = io.WriteString(transcript, text)
		})
		out.Close()
	}()
	err := t.cmd.Wait()
	// The command is gone; whatever it started in the background goes
	// too, which also ends the output stream.
	t.tag.Kill(time.Second)
	<-copied

	s.mu.Lock()
	defer s.mu.Unlock()
	done := sdk.TurnCompleted{Status: sdk.StatusCompleted}
	var exit *exec.ExitError
	switch {
	case t.cancelled:
		done.Status = sdk.StatusInterrupted
	case errors.As(err, &exit):
		code := exit.ExitCode()
		done = sdk.TurnCompleted{Status: sdk.StatusFailed, ExitCode: &code, Error: err.Error()}
	case err != nil:
		done = sdk.TurnCompleted{Status: sdk.StatusFailed, Error: err.Error()}
	default:
		code := 0
		done.ExitCode = &code
	}
	s.running = nil
	s.events.Emit(sdk.TurnCompletedEvent(t.id, done))
	if !s.closed {
		s.events.Emit(sdk.AwaitingInputEvent())
	}
	close(t.done)
}

// openTranscript opens the turn's transcript file, creating its directory.
func openTranscript(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

// streamUTF8 reads r and hands emit the text in chunks that never split a
// character: event text must be valid UTF-8.
func streamUTF8(r io.Reader, emit func(string)) {
	buf := make([]byte, 32*1024)
	held := 0 // bytes of an incomplete character kept from the last read
	for {
		n, err := r.Read(buf[held:])
		n += held
		cut := n
		if i := lastStart(buf[:n]); err == nil && !utf8.FullRune(buf[i:n]) {
			cut = i // keep the incomplete character for the next read
		}
		if cut > 0 {
			emit(strings.ToValidUTF8(string(buf[:cut]), "\uFFFD"))
		}
		held = copy(buf, buf[cut:n])
		if err != nil {
			return
		}
	}
}

// lastStart is the index where the last character of b starts (len(b)
// when b is empty or ends in stray bytes).
func lastStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return len(b)
}

// Close ends the session: at once (the running turn is cancelled) or
// gracefully (the running turn may finish first, until ctx ends).
func (s *session) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	t := s.running
	if t != nil && mode == sdk.CloseImmediate {
		t.cancel()
	}
	s.mu.Unlock()

	if t != nil {
		select {
		case <-t.done:
		case <-ctx.Done():
			s.mu.Lock()
			t.cancel()
			s.mu.Unlock()
			<-t.done
		}
	}
	// Exited is the last event; when Close returns, no process is left.
	s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
	return nil
}
