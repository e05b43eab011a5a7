package main

import (
	"context"
	"sync"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// session is one agent's one-shot CLI: no process between turns, at most
// one turn (one `sh -c` process, in a group of its own) at a time. The
// SDK's plugin.Session keeps the contract; this is its driver.
type session struct {
	*plugin.Session
	settings sessionSettings
	// closeStarted is closed when Close begins.
	closeStarted <-chan struct{}

	mu   sync.Mutex
	proc *plugin.Process // the running turn's CLI, nil between turns
	ran  chan struct{}   // closed when the last turn's goroutine is done
}

func newSession(cfg sdk.SessionConfig, events sdk.EventSink) (*session, error) {
	settings, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	// A one-shot CLI keeps nothing between turns, so there is no runtime
	// session id to save, and a resume id can only be reported as lost.
	ready := sdk.SessionReady{}
	if cfg.ResumeID != "" {
		ready.ContextLostReason = "the one-shot backend keeps no CLI session between turns, so there is nothing to resume"
	}
	s := &session{settings: settings}
	s.Session = plugin.NewSession(events, plugin.Driver{
		Ready:      ready,
		TurnPrefix: "turn-",
		StartTurn:  s.startTurn,
		// Urgent input cannot join a one-shot turn (no steer): when no
		// turn runs it starts one, else it is refused.
		Cancel: s.cancel,
		Stop:   s.stop,
	})
	s.closeStarted = s.CloseBegun()
	if settings.notice != "" {
		// After SessionReady (Emit before it is held back until then).
		s.Emit(sdk.ErrorEvent("", "root_sandbox", settings.notice, false))
	}
	return s, nil
}

// startTurn runs the turn on a goroutine of its own: what goes wrong in
// it, even its start, is reported in the turn's events.
func (s *session) startTurn(_ context.Context, t *plugin.Turn, text string) error {
	ran := make(chan struct{})
	s.mu.Lock()
	s.ran = ran
	s.mu.Unlock()
	go func() {
		defer close(ran)
		t.Complete(s.run(t, text))
	}()
	return nil
}

// cancel stops the turn's whole process group: SIGTERM, so the CLI can
// stop cleanly, and SIGKILL after killGrace.
func (s *session) cancel(context.Context, *plugin.Turn) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		select {
		case <-p.Done():
			// The CLI exited before the cancel came: the turn is over and
			// its exit status is its outcome. Reporting it interrupted
			// would have the host deliver a finished turn again.
			return plugin.ErrTurnEnded
		default:
		}
		go p.Close(context.Background(), sdk.CloseImmediate)
	} // else run sees the cancel before it starts the CLI, or after it ended
	return nil
}

// stop kills the running turn's CLI, if any, and returns once the turn
// has ended.
func (s *session) stop(context.Context, sdk.CloseMode) sdk.ExitInfo {
	s.mu.Lock()
	p, ran := s.proc, s.ran
	s.mu.Unlock()
	if p != nil {
		p.Kill()
	}
	if ran != nil {
		<-ran
	}
	return sdk.ExitInfo{}
}
