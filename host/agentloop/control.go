package agentloop

import (
	"context"
	"sync"

	"github.com/tthost/tthost/host/town"
)

// control watches the agent's stop key and state while a turn runs, so a
// stop or pause reaches the turn within milliseconds of `tthost stop` /
// `tthost interrupt` (they signal the wake list), or within the safety poll
// for writers that do not signal (`tt kill`).
type control struct {
	C      chan string // "stop", "pause" or "shutdown"; at most one value
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	wake   func()
}

func (l *Loop) watchControl(ctx context.Context) *control {
	wctx, cancel := context.WithCancel(ctx)
	c := &control{C: make(chan string, 1), cancel: cancel, done: make(chan struct{})}
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
					c.C <- "shutdown"
				}
				return
			}
			stop, state, err := l.store.ControlState(wctx, l.id)
			if err == nil {
				switch {
				case stop:
					c.C <- "stop"
					return
				case state == town.StatePaused:
					c.C <- "pause"
					return
				}
			} else if wctx.Err() == nil {
				l.log.Warn("check stop/pause during a turn", "error", err)
			}
			_, _ = l.store.WaitWake(wctx, l.id, l.pollInterval())
		}
	}()
	return c
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
