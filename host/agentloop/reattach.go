package agentloop

import (
	"context"
	"fmt"
	"time"

	"github.com/tthost/tthost/host/town"
)

// adoptPendingWait bounds how long an adopted turn that the predecessor
// was still sending (town.TurnPending) waits for the session's events to
// name it. A plugin emits TurnStarted before it answers the Send, so a turn
// that started is named by the first replayed events; one that never
// started is given up and its messages delivered as if never shown.
var adoptPendingWait = 5 * time.Second

// Detach makes the loop end without touching its session, for a successor
// process that reattaches to the same plugins (a host restart or upgrade):
// the running turn runs on in the plugin, nothing is re-queued, and the
// agent's state, session record and lease stay as they are. The caller
// then cancels the loop's context and, once Run returned, detaches its
// backends (backend.Manager.Detach) instead of closing them.
func (l *Loop) Detach() { l.detaching.Store(true) }

// detached is finish for a loop that handed its session on.
func (l *Loop) detached(ctx context.Context) {
	msg := fmt.Sprintf("Worker of %s detached: its session is left running for the next worker process", l.name)
	if l.running != nil {
		msg = fmt.Sprintf("Worker of %s detached: round %d runs on in its session for the next worker process", l.name, l.running.display)
	}
	l.emit(ctx, town.EventAgentStateChanged, msg, detail{Kind: "worker_detached"})
	l.say("🔌 %s", msg)
}

// adopt continues the session a previous worker process of this agent
// left running in a plugin this process reattached to, from the event
// after the last one the predecessor wrote (the session record's seq). A
// turn the predecessor had running becomes this loop's running turn, with
// the messages in flight as its batch: it is followed to its outcome, which
// is written once, and its messages are not delivered again. adopted
// reports whether a running turn was adopted. A session that cannot be
// resumed is left to the backends (they close what nobody adopts), and the
// caller delivers what is in flight again, as after any crash.
func (l *Loop) adopt(ctx context.Context, prev *town.Runtime) (adopted bool, err error) {
	r, ok := l.opts.Backends.(Resumer)
	if !ok || !l.registered {
		return false, nil
	}
	rec, err := l.store.SessionRecord(ctx, l.id)
	if err != nil {
		l.say("⚠️ The session record is unreadable (%v): not reattaching", err)
		return false, nil
	}
	if rec == nil || rec.Session == "" {
		return false, nil
	}
	s, found, err := r.ResumeSession(ctx, l.id, rec.Session, rec.Seq)
	switch {
	case err != nil:
		l.say("⚠️ Could not reattach to session %s: %v", rec.Session, err)
		return false, nil
	case !found:
		if rec.Turn != "" {
			l.say("↻ The previous worker's session %s did not survive: its turn is delivered again", rec.Session)
		}
		return false, nil
	}
	l.session = l.follow(s)
	l.placeAt(rec.Seq)
	if prev != nil && prev.SessionID != "" {
		// The session's SessionReady came before the cursor: keep what the
		// predecessor recorded of it.
		if err := l.store.SetRuntimeSession(ctx, l.id, prev.SessionID, prev.SteerMode); err != nil {
			l.log.Warn("record the runtime session", "error", err)
		}
	}
	if rec.Turn == "" {
		l.say("🔗 Reattached to the idle session %s (after event %d)", rec.Session, rec.Seq)
		l.emit(ctx, town.EventAgentStateChanged, "Reattached to the session the previous worker process left", detail{
			Kind: "session_adopted", Backend: l.choice.Backend, SessionID: rec.Session,
		})
		return false, nil
	}

	left, err := l.store.InFlight(ctx, l.id)
	if err != nil {
		return false, fmt.Errorf("read in-flight messages: %w", err)
	}
	b := l.classify(ctx, left)
	id := rec.Turn
	if id == town.TurnPending {
		id = ""
	}
	l.round = max(rec.Round-1, 0)
	l.state = town.StateWorking
	l.running = &pendingTurn{id: id, display: rec.Round, batch: b, deltas: newDeltaBuffer(l, rec.Round, id), started: time.Now(), adopted: true}
	msg := fmt.Sprintf("Round %d: adopted the turn the previous worker process left running (%d message(s); events after %d)", rec.Round, len(left), rec.Seq)
	l.say("🔗 %s", msg)
	l.activity(ctx, "🔗 "+msg)
	l.emit(ctx, town.EventAgentStateChanged, msg, detail{
		Kind: "turn_adopted", Backend: l.choice.Backend, SessionID: rec.Session, TurnID: id, Round: rec.Round,
	})
	return true, nil
}

// pendingGuard fires when an adopted turn still has no id after
// adoptPendingWait (nil channel otherwise).
func (pt *pendingTurn) pendingGuard() <-chan time.Time {
	if !pt.adopted || pt.id != "" {
		return nil
	}
	return time.After(max(adoptPendingWait-time.Since(pt.started), 0))
}

// unsent handles an adopted turn that never reached the CLI: its messages
// go back as they were, none of them shown.
func (l *Loop) unsent(ctx context.Context, pt *pendingTurn) error {
	l.putBackUnseen(ctx, pt.batch)
	msg := fmt.Sprintf("Round %d: the previous worker process had not started it; its messages are delivered again", pt.display)
	l.say("↩️ %s", msg)
	l.emitOutcome(ctx, 0, town.EventAgentRuntimeError, msg, detail{Kind: "runtime_error", Round: pt.display, Code: "turn_not_started"})
	return l.becomeIdle(ctx)
}

// leavesSessionOnLoss says whether a worker that lost its lease leaves its
// session (and running turn) to its plugin rather than ending it: an
// agent-loop with a reattach window. The worker that took over may have
// reattached to the plugin and adopted the turn (a worker frozen past its
// lease on this machine), or it waits for the window to pass before
// delivering the turn's messages again; the process lets go of its plugins
// without stopping them (backend.Manager.Abandon). A serve host's loops end
// their session: a host's plugins stay attached to the live host, so no
// window bounds a turn left running there.
func (l *Loop) leavesSessionOnLoss() bool {
	return !l.opts.Hosted && l.cfg.TTHost.ReattachWindowSecs > 0
}

// previousPluginsKnown says whether the backends know what became of the
// plugins the previous worker process left (Recover found its reattach
// file: each was reattached, found gone, or stopped). Backends that cannot
// reattach launch plugins that die with their worker.
func (l *Loop) previousPluginsKnown() bool {
	k, ok := l.opts.Backends.(interface{ PreviousPluginsKnown() bool })
	return !ok || k.PreviousPluginsKnown()
}
