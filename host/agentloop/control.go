package agentloop

import (
	"context"
	"sync"
	"time"

	"github.com/tthost/tthost/host/town"
)

// control watches the agent while a turn runs, so a stop or pause reaches
// the turn within milliseconds of `tthost stop` / `tthost interrupt` (they
// signal the wake list) and of writers that do not signal (`tt kill`,
// `tt send --urgent`) when keyspace notifications reach the loop; without
// them, such writes are seen within turn_poll_ms. On a session that can be
// steered it also takes urgent messages as they arrive (an urgent-only
// intake), for the loop to steer into the running turn.
type control struct {
	C      chan turnCause     // causeStop, causePause or causeShutdown; at most one value
	urgent chan []town.Entry  // urgent messages taken for steering
	cancel context.CancelFunc // ends the watcher
	done   chan struct{}      // closed when the watcher returned
	once   sync.Once
	wake   func()
}

func (l *Loop) watchControl(ctx context.Context, steer bool) *control {
	wctx, cancel := context.WithCancel(ctx)
	c := &control{C: make(chan turnCause, 1), urgent: make(chan []town.Entry), cancel: cancel, done: make(chan struct{})}
	c.wake = func() {
		// Unblock the watcher's BLPOP; the extra token at most causes the
		// main loop one spurious, harmless wake-up.
		_ = l.store.Wake(context.WithoutCancel(ctx), l.id)
	}
	go func() {
		defer close(c.done)
		for {
			if wctx.Err() != nil {
				if ctx.Err() != nil {
					c.C <- causeShutdown
				}
				return
			}
			if why := l.check(wctx, c, steer); why != "" {
				c.C <- why
				return
			}
			if l.notified() {
				// Any write to the stop flag, the urgent list or the
				// agent's record fires; the safety poll stays.
				_ = sleepUntil(wctx, l.opts.Wakeups.C(), l.pollInterval())
				continue
			}
			if _, err := l.store.WaitWake(wctx, l.id, l.turnPoll()); err != nil && wctx.Err() == nil {
				// Redis answered with an error (not an outage: the
				// client rides those out); do not spin on it.
				l.log.Warn("wait for a wake signal during a turn", "error", err)
				select {
				case <-wctx.Done():
				case <-time.After(l.turnPoll()):
				}
			}
		}
	}()
	return c
}

// check looks at the stop flag and state once, and (steer) takes urgent
// messages. It returns why the turn must be cancelled, if it must.
func (l *Loop) check(ctx context.Context, c *control, steer bool) turnCause {
	if !steer {
		stop, state, err := l.store.ControlState(ctx, l.id)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				l.log.Warn("check stop/pause during a turn", "error", err)
			}
			return ""
		case stop:
			return causeStop
		case state == town.StatePaused:
			return causePause
		}
		return ""
	}
	res, err := l.intake(ctx, town.IntakeOptions{UrgentOnly: true, Full: true})
	switch {
	case err != nil:
		if ctx.Err() == nil {
			l.log.Warn("check stop/pause and urgent messages during a turn", "error", err)
		}
		return ""
	case res.StopRequested:
		return causeStop
	case res.State == town.StatePaused:
		return causePause
	}
	if len(res.Moved) == 0 {
		return ""
	}
	select {
	case c.urgent <- res.Moved:
	case <-ctx.Done():
		// The turn ended before the loop took them: they go back to the
		// front of the urgent list for the next turn.
		if _, err := l.requeue(context.WithoutCancel(ctx), res.Moved...); err != nil {
			l.log.Error("re-queue urgent messages", "error", err)
		}
	}
	return ""
}

// stop ends the watcher and waits for it.
func (c *control) stop() {
	c.once.Do(func() {
		c.cancel()
		select {
		case <-c.done:
		default:
			c.wake()
			<-c.done
		}
	})
}
