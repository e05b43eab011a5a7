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
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
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
	child, err := plugin.StartProcess(plugin.ProcessConfig{Args: []string{"sleep", "300"}, Env: cfg.Env, NoStdin: true})
	if err != nil {
		return nil, fmt.Errorf("start session child: %w", err)
	}
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
	e := &echo{}
	d := plugin.Driver{
		Ready:     ready,
		StartTurn: e.startTurn,
		// The fallback CLI ("*") declares no steer or interrupt.
		Steer: func(context.Context, *plugin.Turn, string) error {
			return fmt.Errorf("steering: %w", sdk.ErrUnsupported)
		},
		Stop: func(context.Context, sdk.CloseMode) sdk.ExitInfo {
			e.stopTurn()
			child.Kill()
			<-child.Done()
			plugin.Logger().Info("echo session closed")
			return sdk.ExitInfo{Signal: "killed"}
		},
	}
	if full {
		d.Steer = func(_ context.Context, t *plugin.Turn, text string) error {
			t.Output("[steer] " + text)
			return nil
		}
		d.Cancel = func(context.Context, *plugin.Turn) error { e.stopTurn(); return nil }
	}
	s := plugin.NewSession(events, d)
	go func() {
		<-child.Done()
		s.Lost(errors.New("the session's process died")) // nothing during a Close
	}()
	return s, nil
}

// echo runs a session's turns, one at a time.
type echo struct {
	mu     sync.Mutex
	cancel context.CancelFunc // of the running turn
	done   chan struct{}      // closed when the running turn has ended
}

func (e *echo) startTurn(_ context.Context, t *plugin.Turn, text string) error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e.mu.Lock()
	e.cancel, e.done = cancel, done
	e.mu.Unlock()
	go func() {
		defer close(done)
		t.Complete(run(ctx, t, text))
	}()
	return nil
}

// stopTurn cancels the running turn and waits for its end.
func (e *echo) stopTurn() {
	e.mu.Lock()
	cancel, done := e.cancel, e.done
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func run(ctx context.Context, t *plugin.Turn, text string) sdk.TurnCompleted {
	cancelled := sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled"}
	if ms, ok := strings.CutPrefix(text, "SLEEP_MS="); ok {
		n, _ := strconv.Atoi(ms)
		timer := time.NewTimer(time.Duration(n) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
			return sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "slept " + ms + " ms"}
		case <-ctx.Done():
			return cancelled
		}
	}
	for _, r := range text { // one delta per character: the SDK must coalesce them
		if ctx.Err() != nil {
			return cancelled
		}
		t.Output(string(r))
	}
	return sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: fmt.Sprintf("echoed %d bytes", len(text))}
}
