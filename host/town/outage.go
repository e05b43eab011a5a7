package town

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Redis outage (a restart, a Sentinel failover, a managed service's
// maintenance, a network blip) is normal for a fleet. A worker's Redis
// client gets an OutageHook: every command that fails because Redis is
// unreachable is retried with backoff and jitter until Redis answers or the
// outage has lasted longer than the bound. Callers see a command that took
// long, not an error, so every write of the worker (a turn's ack, its
// state, its events) lands in program order once Redis is back and a
// finished turn is never run again because its ack could not be written.
// Commands of tools (tthost send, status) are not retried: they fail fast
// and say why.

// ErrRedisOutage is returned once an outage outlasted its bound.
var ErrRedisOutage = errors.New("Redis has been unreachable for longer than redis_outage_secs")

// IsUnavailable reports whether err means Redis could not be reached or
// cannot serve yet (connection refused or reset, timeouts, a server still
// loading its data, a replica promoted or demoted mid-failover), as opposed
// to an answer (redis.Nil, a script's error, a fenced write).
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrFenced) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOENT) || errors.Is(err, redis.ErrPoolTimeout) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "no such file or directory")
}

// OutageHook is a go-redis hook that rides out Redis outages.
type OutageHook struct {
	// Bound is how long an outage may last before commands fail with
	// ErrRedisOutage.
	Bound time.Duration
	// OnDown is called once when an outage starts, with the first error;
	// OnUp once when Redis answers again, with how long it was away.
	OnDown func(err error)
	OnUp   func(down time.Duration)
	// Abandon, once closed, ends the waiting: commands fail at once while
	// Redis is unreachable. A worker closes it some seconds after it was
	// asked to stop, so a SIGTERM during an outage does not wait for the
	// outage's bound; what it holds stays in flight for the next worker.
	Abandon <-chan struct{}
	// Now is the clock (tests may replace it).
	Now func() time.Time

	// since is the start of the current outage (unix nanoseconds), 0 while
	// Redis answers. Atomic: every command of the worker reads it.
	since atomic.Int64
}

// Retry bounds of the backoff between attempts.
const (
	outageBackoffMin = 50 * time.Millisecond
	outageBackoffMax = time.Second
)

// Down reports whether an outage is in progress and since when.
func (h *OutageHook) Down() (bool, time.Time) {
	ns := h.since.Load()
	return ns != 0, time.Unix(0, ns)
}

func (h *OutageHook) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// run calls attempt until it succeeds, fails with an answer, ctx ends, or
// the outage outlasts the bound.
func (h *OutageHook) run(ctx context.Context, attempt func() error) error {
	backoff := outageBackoffMin
	for {
		err := attempt()
		if !IsUnavailable(err) {
			h.up() // Redis answered, even if with an error
			return err
		}
		since := h.down(err)
		if h.now().Sub(since) > h.Bound {
			return fmt.Errorf("%w (%s since %s): %v", ErrRedisOutage, h.Bound, since.Format(time.TimeOnly), err)
		}
		select {
		case <-h.Abandon:
			return err
		default:
		}
		// Full jitter in [backoff/2, backoff]: many workers that lost the
		// same server do not reconnect in lockstep.
		d := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-h.Abandon:
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(backoff*2, outageBackoffMax)
	}
}

// down records the start of an outage (reporting it once) and returns it.
func (h *OutageHook) down(err error) time.Time {
	now := h.now()
	if h.since.CompareAndSwap(0, now.UnixNano()) {
		if h.OnDown != nil {
			h.OnDown(err)
		}
		return now
	}
	return time.Unix(0, h.since.Load())
}

// up ends an outage, if one was in progress, and reports how long it was.
// While Redis answers it is one atomic load per command.
func (h *OutageHook) up() {
	if h.since.Load() == 0 {
		return
	}
	if ns := h.since.Swap(0); ns != 0 && h.OnUp != nil {
		h.OnUp(h.now().Sub(time.Unix(0, ns)))
	}
}

// DialHook implements redis.Hook.
func (h *OutageHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// connInit are the commands go-redis sends to set up a new connection
// (through the client's hooks). They are not retried: a retry would reuse
// the same broken connection and never heal; failing lets go-redis drop the
// connection, and the command that needed it is retried on a new one.
var connInit = map[string]bool{"hello": true, "auth": true, "select": true, "client": true, "readonly": true}

// ProcessHook implements redis.Hook: a command is retried as a whole.
func (h *OutageHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if connInit[cmd.Name()] {
			return next(ctx, cmd)
		}
		return h.run(ctx, func() error {
			// A retried command must not keep the previous attempt's error.
			cmd.SetErr(nil)
			err := next(ctx, cmd)
			if err == nil {
				err = cmd.Err()
			}
			return err
		})
	}
}

// ProcessPipelineHook implements redis.Hook: a pipeline (or MULTI/EXEC
// transaction) is retried as a whole.
func (h *OutageHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.run(ctx, func() error {
			for _, c := range cmds {
				c.SetErr(nil)
			}
			err := next(ctx, cmds)
			if err != nil {
				return err
			}
			for _, c := range cmds {
				if e := c.Err(); IsUnavailable(e) {
					return e
				}
			}
			return nil
		})
	}
}
