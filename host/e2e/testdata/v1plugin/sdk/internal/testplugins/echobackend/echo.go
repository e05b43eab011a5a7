// Package echobackend is a small, well-behaved backend for tthost's own
// tests: a turn streams its input back as many tiny deltas, "SLEEP_MS=n"
// makes a turn wait n ms (cancellable), and every session owns a child
// process (`sleep 300` in its own process group) so tests can prove that
// children die with their session and their plugin.
package echobackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk"
)

// Backend is the echo backend.
type Backend struct{}

// New returns the echo backend.
func New() *Backend { return &Backend{} }

// Describe implements sdk.Backend.
func (b *Backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "echo",
		Version: "1.2.3",
		Summary: "Echoes every turn back, for tthost's tests.",
		CLIs: []sdk.CLI{
			{Name: "echo", Capabilities: []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt, sdk.CapResume}},
			{Name: sdk.AnyCLI},
		},
		OptionsSchema: `{"type":"object","properties":{"burst":{"type":"string"}}}`,
	}, nil
}

// OpenSession implements sdk.Backend. Option "burst=N" emits N tool-call
// events before OpenSession returns, before any host could subscribe.
func (b *Backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName == "" {
		return nil, fmt.Errorf("no CLI name: %w", sdk.ErrInvalidConfig)
	}
	full := cfg.CLIName == "echo"
	if !full && cfg.Command == "" {
		return nil, fmt.Errorf("CLI %q needs a command: %w", cfg.CLIName, sdk.ErrInvalidConfig)
	}
	child := exec.Command("sleep", "300")
	// Its own group, so Close can end everything the session started; and
	// killed if the plugin dies without closing it.
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("start session child: %w", err)
	}
	s := &session{events: events, full: full, child: child, childDone: make(chan struct{}), closed: make(chan struct{})}
	go s.watchChild()

	n, _ := strconv.Atoi(cfg.Options["burst"])
	for i := range n {
		events.Emit(sdk.ToolCallEvent("", sdk.ToolCall{ID: strconv.Itoa(i), Kind: "command", Name: "burst", Status: "completed"}))
	}
	ready := sdk.SessionReady{RuntimeSessionID: cfg.ResumeID, Resumed: cfg.ResumeID != ""}
	if !ready.Resumed {
		var b [8]byte
		_, _ = rand.Read(b[:])
		ready.RuntimeSessionID = "echo-" + hex.EncodeToString(b[:])
	}
	events.Emit(sdk.SessionReadyEvent(ready))
	events.Emit(sdk.AwaitingInputEvent())
	return s, nil
}

type session struct {
	events    sdk.EventSink
	full      bool // the "echo" CLI, with steer and interrupt
	child     *exec.Cmd
	childDone chan struct{}

	mu      sync.Mutex
	turn    *turn
	turns   int
	closing bool
	closed  chan struct{}
}

type turn struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *session) watchChild() {
	_ = s.child.Wait()
	close(s.childDone)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.events.Emit(sdk.ErrorEvent("", "cli_exited", "the session's process died", true))
		s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitCLIExited}))
	}
}

// Send implements sdk.Session.
func (s *session) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return sdk.Delivery{}, fmt.Errorf("session is closed: %w", sdk.ErrSessionNotFound)
	}
	switch in.Kind {
	case sdk.InputTurn:
		if s.turn != nil {
			return sdk.Delivery{}, fmt.Errorf("turn %s has not finished: %w", s.turn.id, sdk.ErrTurnRunning)
		}
		return s.startLocked(in.Text), nil
	case sdk.InputUrgent:
		if s.turn == nil {
			return s.startLocked(in.Text), nil
		}
		if !s.full {
			return sdk.Delivery{}, fmt.Errorf("steering: %w", sdk.ErrUnsupported)
		}
		s.events.Emit(sdk.DeltaEvent(s.turn.id, "[steer] "+in.Text))
		return sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: s.turn.id}, nil
	case sdk.InputCancel:
		if !s.full {
			return sdk.Delivery{}, fmt.Errorf("cancelling: %w", sdk.ErrUnsupported)
		}
		if s.turn == nil {
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		s.turn.cancel()
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: s.turn.id}, nil
	}
	return sdk.Delivery{}, fmt.Errorf("input kind %v: %w", in.Kind, sdk.ErrUnsupported)
}

func (s *session) startLocked(text string) sdk.Delivery {
	s.turns++
	ctx, cancel := context.WithCancel(context.Background())
	t := &turn{id: "t" + strconv.Itoa(s.turns), cancel: cancel, done: make(chan struct{})}
	s.turn = t
	s.events.Emit(sdk.TurnStartedEvent(t.id))
	go s.run(ctx, t, text)
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}
}

func (s *session) run(ctx context.Context, t *turn, text string) {
	defer close(t.done)
	if ms, ok := strings.CutPrefix(text, "SLEEP_MS="); ok {
		n, _ := strconv.Atoi(ms)
		timer := time.NewTimer(time.Duration(n) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			s.finish(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled"})
			return
		}
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "slept " + ms + " ms"})
		return
	}
	for _, r := range text { // one delta per character: the SDK must coalesce them
		if ctx.Err() != nil {
			s.finish(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled"})
			return
		}
		s.events.Emit(sdk.DeltaEvent(t.id, string(r)))
	}
	s.finish(t, sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: fmt.Sprintf("echoed %d bytes", len(text))})
}

// finish ends the turn under the lock, so a host that reacts to
// TurnCompleted with a new turn never finds this one still running.
func (s *session) finish(t *turn, c sdk.TurnCompleted) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn = nil
	s.events.Emit(sdk.TurnCompletedEvent(t.id, c))
	s.events.Emit(sdk.AwaitingInputEvent())
}

// Close implements sdk.Session.
func (s *session) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.closed
		return nil
	}
	s.closing = true
	t := s.turn
	s.mu.Unlock()

	if t != nil {
		if mode == sdk.CloseGraceful {
			select {
			case <-t.done:
			case <-ctx.Done():
			}
		}
		t.cancel()
		<-t.done
	}
	_ = syscall.Kill(-s.child.Process.Pid, syscall.SIGKILL)
	<-s.childDone
	sdk.Logger().Info("echo session closed", "mode", mode)
	s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed, Signal: "killed"}))
	close(s.closed)
	return nil
}
