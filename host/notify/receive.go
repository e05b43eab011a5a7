package notify

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// run is the receive loop, the only reader of the pub/sub connection. It
// hands events to watches, answers barriers, checks the connection's
// health and, after a loss, resynchronises: wait for the new connection
// (go-redis resubscribes on it), run Ensure again, fire every watch once.
func (n *Notifier) run(ctx context.Context) {
	defer close(n.done)
	var (
		backoff time.Duration
		pinged  bool   // a health PING is unanswered
		resync  string // the PING payload whose PONG ends a resync; "" when none is pending
	)
	// after a loss (or a failed resync): pause, then send the PING that
	// will come back after go-redis's resubscription on a new connection.
	// Until it is sent the loop must not go back to receiving: a new
	// connection made by that receive would bring no PONG, and the
	// watches would never fire for what happened meanwhile.
	retry := func() bool {
		for {
			backoff = nextBackoff(backoff)
			if !sleep(ctx, backoff) {
				return false
			}
			n.mu.Lock()
			resync = n.tokenLocked("resync")
			n.mu.Unlock()
			err := n.ping(ctx, resync)
			if err == nil {
				return true
			}
			n.log.Trace("Redis is not back yet", "error", err)
			n.testHook("down")
		}
	}
	for {
		msg, err := n.pubsub().ReceiveTimeout(ctx, n.opts.HealthInterval)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				pinged = true
				_ = n.ping(ctx, "tthost-notify:health")
				continue
			}
			if isTimeout(err) {
				n.log.Warn("the Redis pub/sub connection did not answer a PING: replacing it")
				n.testHook("silent")
				n.replace(ctx)
			} else {
				n.log.Debug("Redis pub/sub connection lost; reconnecting", "error", err)
			}
			pinged = false
			n.mu.Lock()
			n.failBarriersLocked(errReconnected)
			n.mu.Unlock()
			if !retry() {
				return
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			n.deliver(m.Channel, m.Payload)
		case *redis.Pong:
			if resync == "" || m.Payload != resync {
				n.releaseBarrier(m.Payload)
				continue
			}
			resync = ""
			if err := n.resynced(ctx); err != nil {
				n.log.Warn("check keyspace notifications after a reconnect", "error", err)
				if !retry() {
					return
				}
				continue
			}
			backoff = 0
		case *redis.Subscription:
			// Confirmations arrive in the order SUBSCRIBEs were sent; the
			// PING barriers behind them are what Watch waits for.
			n.log.Trace("pub/sub subscription", "kind", m.Kind, "channel", m.Channel, "count", m.Count)
		}
	}
}

// deliver fires the watches of channel when event is a relevant write.
func (n *Notifier) deliver(channel, event string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cw := n.chans[channel]
	if cw == nil || !relevant(cw.kind, event) {
		return
	}
	for w := range cw.watches {
		w.fire()
	}
}

func (n *Notifier) releaseBarrier(token string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if done, ok := n.barriers[token]; ok {
		done <- nil
		delete(n.barriers, token)
	}
}

// resynced runs after a reconnect, once every channel is subscribed again:
// Ensure restores the flags a restarted server lost, then every watch
// fires, since a write may have happened while nobody listened. The order
// matters: a write after the fire must produce an event.
func (n *Notifier) resynced(ctx context.Context) error {
	st, err := Ensure(ctx, n.rdb, n.keys, n.opts.ensure())
	if err != nil {
		return err
	}
	n.mu.Lock()
	old := n.status
	n.status = st
	for w := range n.watches {
		w.fire()
	}
	n.mu.Unlock()
	switch {
	case st.Mode != old.Mode:
		n.log.Warn("keyspace notifications changed after a reconnect", "mode", st.Mode, "status", st.String())
	case st.Enabled:
		n.log.Info("keyspace notifications turned on again after a reconnect", "status", st.String())
	default:
		n.log.Debug("pub/sub connection back", "status", st.String())
	}
	n.testHook("resync")
	return nil
}

func (n *Notifier) testHook(event string) {
	n.mu.Lock()
	hook := n.hook
	n.mu.Unlock()
	if hook != nil {
		hook(event)
	}
}

// replace swaps a silent connection for a new PubSub subscribed to every
// channel; an error now is retried by go-redis on its next connection. It
// holds subMu while it dials, as Watch does: go-redis's dial, read and
// write timeouts bound the wait of a Watch or Close meanwhile.
func (n *Notifier) replace(ctx context.Context) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	if ctx.Err() != nil {
		return // Close owns n.ps now
	}
	n.mu.Lock()
	chans := make([]string, 0, len(n.chans))
	for ch := range n.chans {
		chans = append(chans, ch)
	}
	n.mu.Unlock()
	old := n.ps
	n.ps = n.rdb.Subscribe(ctx)
	if len(chans) > 0 {
		_ = n.subscribeLocked(ctx, chans)
	}
	_ = old.Close()
}

func nextBackoff(b time.Duration) time.Duration {
	if b == 0 {
		return minBackoff
	}
	return min(2*b, maxBackoff)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
