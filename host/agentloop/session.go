package agentloop

import (
	"context"
	"path/filepath"
	"time"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// live is the agent's open backend session. A pump goroutine forwards the
// session's events so the loop sees them while it is idle too: a
// persistent session's CLI can exit between turns, and the loop must
// notice (and say so) without waiting for the next message.
type live struct {
	s      Session
	events chan sdk.Event
}

// openSession opens the backend session, resuming the saved runtime
// session when the backend can.
func (l *Loop) openSession(ctx context.Context) (*live, error) {
	var resume string
	if l.choice.Has(sdk.CapResume) && l.registered {
		if a, err := l.store.GetAgent(ctx, l.id); err == nil {
			resume = a.RuntimeSessionID
		}
	}
	s, err := l.opts.Backends.OpenSession(ctx, l.choice, sdk.SessionConfig{
		CLIName:   l.cliName,
		Command:   l.cliCmd,
		Workdir:   l.opts.TownDir,
		Env:       l.cliEnv(),
		ResumeID:  resume,
		Options:   l.cfg.BackendOptions(l.choice.Backend, l.cliName),
		AgentID:   l.id,
		AgentName: l.name,
		LogDir:    filepath.Join(l.opts.TownDir, ".tt", "logs"),
	})
	if err != nil {
		return nil, err
	}
	if resume != "" {
		l.say("↻ Resuming the saved runtime session %s", resume)
	}
	l.placeAt(0)
	if l.registered {
		if err := l.store.RecordSessionOpened(ctx, l.id, s.ID(), l.choice.Backend); err != nil {
			l.log.Warn("record the session", "error", err)
		}
	}
	return l.follow(s), nil
}

// follow pumps a session's events into a live session.
func (l *Loop) follow(s Session) *live {
	lv := &live{s: s, events: make(chan sdk.Event, 256)}
	go func() {
		defer close(lv.events)
		for ev := range s.Events() {
			lv.events <- ev
			if ev.Kind == sdk.EventExited {
				// Wake an idle loop so it notices at once.
				_ = l.store.Wake(context.Background(), l.id)
			}
		}
	}()
	return lv
}

// ensureSession returns the open session, first taking the events that
// arrived while no turn ran; a session that ended meanwhile is replaced.
func (l *Loop) ensureSession(ctx context.Context) (*live, error) {
	if l.session != nil && l.drainIdle(ctx) {
		return l.session, nil
	}
	lv, err := l.openSession(ctx)
	if err != nil {
		return nil, err
	}
	l.session = lv
	return lv, nil
}

// drainIdle handles the session events that arrived between turns and
// reports whether the session is still usable. A session whose runtime
// exited is dropped (the next turn opens a new one, resuming it).
func (l *Loop) drainIdle(ctx context.Context) bool {
	if l.session == nil {
		return false
	}
	for {
		select {
		case ev, ok := <-l.session.events:
			if !ok || ev.Kind == sdk.EventExited {
				reason := "its event stream ended"
				if ok && ev.Exited != nil && ev.Exited.Reason != "" {
					reason = ev.Exited.Reason
				}
				msg := "The backend session ended while the agent was idle (" + reason + "); the next turn opens a new one"
				l.say("↻ %s", msg)
				l.activity(ctx, msg)
				if ok {
					l.handled(ev.Seq)
				}
				l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: "runtime_exited", Code: reason})
				l.session = nil
				l.forgetSession(ctx)
				return false
			}
			l.handled(ev.Seq)
			l.sessionEvent(ctx, ev, l.round)
		default:
			return true
		}
	}
}

// closeSession closes the session and waits for its last events.
func (l *Loop) closeSession(ctx context.Context, mode sdk.CloseMode) {
	if l.session == nil {
		return
	}
	lv := l.session
	l.session = nil
	grace := time.Duration(l.cfg.TTHost.StopGraceSecs) * time.Second
	cctx, cancel := context.WithTimeout(ctx, grace+time.Second)
	defer cancel()
	defer l.forgetSession(ctx)
	if err := lv.s.Close(cctx, mode); err != nil {
		l.log.Warn("close backend session", "error", err)
	}
	// Let the pump finish: the session's last events (its Exited) are
	// recorded rather than dropped.
	for {
		select {
		case ev, ok := <-lv.events:
			if !ok {
				return
			}
			if ev.Kind != sdk.EventExited {
				l.handled(ev.Seq)
				l.sessionEvent(ctx, ev, l.round)
			}
		case <-cctx.Done():
			return
		}
	}
}

// forgetSession drops the closed session from the session record: no
// successor resumes it.
func (l *Loop) forgetSession(ctx context.Context) {
	l.placeAt(0)
	if !l.registered {
		return
	}
	if err := l.store.ForgetSession(context.WithoutCancel(ctx), l.id); err != nil {
		l.log.Warn("forget the closed session", "error", err)
	}
}
