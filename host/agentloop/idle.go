package agentloop

import (
	"context"
	"fmt"
	"time"

	"github.com/tthost/tthost/host/town"
)

// idle handles an intake that found nothing: clear a
// finished current task, mark the agent idle, heartbeat, offer new
// role-matching backlog, enforce the idle timeout, then sleep until woken.
// exit is true when the idle timeout ended the loop.
func (l *Loop) idle(ctx context.Context, backlogLen int64) (exit bool, err error) {
	now := l.opts.Now()
	l.drainIdle(ctx)
	if err := l.clearFinishedTask(ctx); err != nil {
		return false, err
	}
	if l.state != town.StateIdle && l.state != town.StatePaused {
		// Becoming idle starts the idle clock (Tinytown's became_idle).
		l.lastActive = now
		l.lastBeat = now
		written, err := l.setState(ctx, town.AgentUpdate{State: town.StateIdle, Active: true, Heartbeat: true})
		if err != nil {
			return false, err
		}
		if written {
			l.say("📭 Inbox empty, waiting")
		}
	}
	l.heartbeatIfDue(ctx)

	// The backlog is looked at when its length changed: one snapshot per
	// change, not one per poll.
	if backlogLen != l.backlogLen {
		l.backlogLen = backlogLen
		if backlogLen > 0 {
			if q, _ := l.backlogOffer(ctx, true); q != nil {
				return false, l.turn(ctx, &batch{confirmations: map[string]int{}, actionable: []item{{msg: q}}})
			}
		}
	}

	timeout := time.Duration(l.cfg.Agent.IdleTimeoutSecs) * time.Second
	wait := l.pollInterval()
	if timeout > 0 && l.current == "" {
		left := l.lastActive.Add(timeout).Sub(now)
		if left <= 0 {
			secs := l.cfg.Agent.IdleTimeoutSecs
			l.say("🔻 Idle timeout reached after %ds, draining and stopping", secs)
			if _, err := l.setState(ctx, town.AgentUpdate{State: town.StateDraining}); err != nil {
				return false, err
			}
			l.activity(ctx, fmt.Sprintf("🔻 Idle timeout reached after %ds; draining and stopping", secs))
			return true, nil
		}
		wait = min(wait, left)
	}
	if l.opts.Hosted && l.notified() {
		return false, l.idleOnWakeups(ctx, timeout)
	}
	return false, l.wait(ctx, wait)
}

// idleOnWakeups waits for the agent's wakeups without polling (a serve
// host's agents): a timer wakes it only for its heartbeat and for the
// idle timeout. It returns when woken, at the idle timeout, or when the
// wakeups stop being active (then the loop polls again).
func (l *Loop) idleOnWakeups(ctx context.Context, timeout time.Duration) error {
	beat := time.Duration(l.cfg.TTHost.HeartbeatSecs) * time.Second
	for {
		now := l.opts.Now()
		d := l.lastBeat.Add(beat).Sub(now)
		if timeout > 0 && l.current == "" {
			d = min(d, l.lastActive.Add(timeout).Sub(now))
		}
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-l.opts.Wakeups.C():
			t.Stop()
			return nil
		case <-t.C:
		}
		l.heartbeatIfDue(ctx)
		if !l.notified() || l.leaseLost.Load() {
			return nil
		}
		if timeout > 0 && l.current == "" && !l.opts.Now().Before(l.lastActive.Add(timeout)) {
			return nil
		}
	}
}

// clearFinishedTask drops current_task when that task is terminal or gone
// (a stale pointer must not keep an agent from idling out).
func (l *Loop) clearFinishedTask(ctx context.Context) error {
	if l.current == "" {
		return nil
	}
	task, err := l.store.GetTask(ctx, l.current)
	if err == nil && !task.State.Terminal() {
		return nil
	}
	if err != nil && !isNotFound(err) {
		return err
	}
	l.current = ""
	if !l.registered {
		return nil
	}
	return l.store.ClearCurrentTask(ctx, l.id)
}

// backlogOffer returns a synthetic query from the supervisor when
// role-matching backlog tasks exist, and the backlog's size.
// With onlyNew (the idle path) it offers only when a matching task was not
// offered before, so an agent that declines is not asked again until new
// matching work appears. Tinytown never offered the backlog to an idle
// agent at all; it idled to its timeout with matching work waiting.
func (l *Loop) backlogOffer(ctx context.Context, onlyNew bool) (q *town.Message, total int) {
	snap, err := l.store.BacklogSnapshot(ctx, l.name, 8)
	if err != nil {
		l.log.Warn("backlog snapshot", "error", err)
		return nil, 0
	}
	if snap.Matching == 0 {
		return nil, snap.Total
	}
	fresh := false
	for _, t := range snap.Shown {
		if !l.offered[t.ID] {
			fresh = true
		}
		l.offered[t.ID] = true
	}
	if onlyNew && !fresh {
		return nil, snap.Total
	}
	l.say("📋 Offering %d role-matching backlog task(s)", snap.Matching)
	return town.NewQuery(town.SupervisorID, l.id, fmt.Sprintf(
		"No direct assignments right now. Backlog has %d role-matching task(s): review and claim one with `tthost backlog claim <task-id> %s`.",
		snap.Matching, l.name)), snap.Total
}
