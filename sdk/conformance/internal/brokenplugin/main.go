// Command brokenplugin is a backend for the conformance suite's own tests:
// well-behaved by default, and broken on demand, so the tests can prove
// that the suite passes a good plugin and names the checks a bad one
// fails.
//
// It serves the CLI "stand-in" (interrupt, steer, resume) without running
// the configured command: a turn echoes its prompt, sleeps until cancelled
// when the prompt holds CONFORMANCE_SLEEP, and fails when it holds
// CONFORMANCE_FAIL (conformance.MarkSleep and MarkFail). Every session owns
// a child process (`sleep 3600`) with the environment plugin.ChildEnv builds,
// killed when the session closes.
//
// BROKEN_PLUGIN_DEFECTS, a comma-separated list, breaks it:
//
//	double-complete  every turn emits TurnCompleted twice
//	leak-child       the session's child runs in a session of its own and
//	                 is never killed
//	slow-cancel      a cancel takes 2 s to end the turn
//	silent-failure   a failing turn is reported completed; the failure is
//	                 only logged
//	leak-env         the session's child gets the plugin's whole
//	                 environment (os.Environ()), handshake cookie and
//	                 go-plugin variables included, plus the session's
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

// DefectsEnv lists the defects to switch on.
const DefectsEnv = "BROKEN_PLUGIN_DEFECTS"

const (
	cliName   = "stand-in"
	markSleep = "CONFORMANCE_SLEEP"
	markFail  = "CONFORMANCE_FAIL"
	idPrefix  = "broken-"
)

type defects struct {
	doubleComplete, leakChild, slowCancel, silentFailure, leakEnv bool
}

func parseDefects(s string) defects {
	list := strings.Split(s, ",")
	return defects{
		doubleComplete: slices.Contains(list, "double-complete"),
		leakChild:      slices.Contains(list, "leak-child"),
		slowCancel:     slices.Contains(list, "slow-cancel"),
		silentFailure:  slices.Contains(list, "silent-failure"),
		leakEnv:        slices.Contains(list, "leak-env"),
	}
}

type backend struct{ defects defects }

func (b *backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "broken",
		Version: "0.0.1",
		Summary: "a backend that breaks the contract on demand, for the conformance suite's tests",
		CLIs: []sdk.CLI{{Name: cliName, Capabilities: []sdk.Capability{
			sdk.CapPersistent, sdk.CapInterrupt, sdk.CapSteer, sdk.CapResume,
		}}},
	}, nil
}

func (b *backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName != cliName {
		return nil, fmt.Errorf("%w: this backend serves the CLI %q, not %q", sdk.ErrInvalidConfig, cliName, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, fmt.Errorf("%w: the command is empty", sdk.ErrInvalidConfig)
	}
	env, err := plugin.ChildEnv(cfg.Env)
	if err != nil {
		return nil, err
	}
	if b.defects.leakEnv {
		env = append(os.Environ(), env...)
	}
	child := exec.Command("sleep", "3600")
	child.Env = env
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if b.defects.leakChild {
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("start the session's child: %w", err)
	}
	s := &session{b: b, events: events, child: child, childDone: make(chan struct{}), closed: make(chan struct{})}
	go func() {
		_ = child.Wait()
		close(s.childDone)
	}()

	ready := sdk.SessionReady{RuntimeSessionID: idPrefix + randomHex()}
	switch {
	case strings.HasPrefix(cfg.ResumeID, idPrefix):
		ready = sdk.SessionReady{RuntimeSessionID: cfg.ResumeID, Resumed: true}
	case cfg.ResumeID != "":
		ready.ContextLostReason = "no such session: " + cfg.ResumeID
	}
	events.Emit(sdk.SessionReadyEvent(ready))
	events.Emit(sdk.AwaitingInputEvent())
	return s, nil
}

type session struct {
	b         *backend
	events    sdk.EventSink
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

func (s *session) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return sdk.Delivery{}, fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
	}
	switch in.Kind {
	case sdk.InputTurn:
		if s.turn != nil {
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s has not finished", sdk.ErrTurnRunning, s.turn.id)
		}
		return s.startLocked(in), nil
	case sdk.InputUrgent:
		if s.turn == nil {
			return s.startLocked(in), nil
		}
		s.events.Emit(sdk.DeltaEvent(s.turn.id, "[steered] "+in.Text))
		return sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: s.turn.id}, nil
	case sdk.InputCancel:
		if s.turn == nil {
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		t := s.turn
		if s.b.defects.slowCancel {
			time.AfterFunc(2*time.Second, t.cancel)
		} else {
			t.cancel()
		}
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: t.id}, nil
	}
	return sdk.Delivery{}, fmt.Errorf("%w: input kind %v", sdk.ErrUnsupported, in.Kind)
}

func (s *session) startLocked(in sdk.Input) sdk.Delivery {
	s.turns++
	ctx, cancel := context.WithCancel(context.Background())
	t := &turn{id: "turn-" + strconv.Itoa(s.turns), cancel: cancel, done: make(chan struct{})}
	s.turn = t
	s.events.Emit(sdk.TurnStartedEvent(t.id))
	go s.run(ctx, t, in)
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}
}

func (s *session) run(ctx context.Context, t *turn, in sdk.Input) {
	defer close(t.done)
	switch {
	case strings.Contains(in.Text, markSleep):
		s.events.Emit(sdk.DeltaEvent(t.id, "sleeping until cancelled\n"))
		<-ctx.Done()
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled"})
	case strings.Contains(in.Text, markFail) && s.b.defects.silentFailure:
		plugin.Logger().Error("the turn failed", "turn", t.id)
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusCompleted})
	case strings.Contains(in.Text, markFail):
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "failing as asked"})
	default:
		out := in.Text + "\n"
		if in.TranscriptPath != "" {
			_ = os.MkdirAll(filepath.Dir(in.TranscriptPath), 0o755)
			_ = os.WriteFile(in.TranscriptPath, []byte(out), 0o644)
		}
		for len(out) > 0 {
			n := min(len(out), 1000)
			for n < len(out) && (out[n]&0xC0) == 0x80 { // whole runes only
				n++
			}
			s.events.Emit(sdk.DeltaEvent(t.id, out[:n]))
			out = out[n:]
		}
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "echoed"})
	}
}

// finish ends the turn under the lock, so a new turn never finds it.
func (s *session) finish(t *turn, c sdk.TurnCompleted) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn = nil
	s.events.Emit(sdk.TurnCompletedEvent(t.id, c))
	if s.b.defects.doubleComplete {
		s.events.Emit(sdk.TurnCompletedEvent(t.id, c))
	}
	if !s.closing {
		s.events.Emit(sdk.AwaitingInputEvent())
	}
}

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
	if !s.b.defects.leakChild {
		_ = syscall.Kill(-s.child.Process.Pid, syscall.SIGKILL)
		<-s.childDone
	}
	s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
	close(s.closed)
	return nil
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func main() {
	plugin.Serve(&backend{defects: parseDefects(os.Getenv(DefectsEnv))})
}
