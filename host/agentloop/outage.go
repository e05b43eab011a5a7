package agentloop

import (
	"context"
	"fmt"
	"time"

	"github.com/tthost/tthost/host/town"
)

// Redis outages. The worker's Redis client carries a town.OutageHook
// (installed by whoever builds the store: tthost agent-loop), so a command
// issued while Redis is away waits for it instead of failing. The loop
// only has to say so: RedisDown and RedisUp are the hook's callbacks. The
// outage itself is recorded in the agent's activity log and event stream
// once Redis can take writes again.

// RedisDown is the outage hook's OnDown: the agent's log says that Redis
// is away and how long the worker waits for it.
func (l *Loop) RedisDown(err error) {
	l.say("⚠️ Redis is unreachable (%v): waiting for it for up to %ds (redis_outage_secs); outcomes are kept and written when it is back",
		err, l.cfg.TTHost.RedisOutageSecs)
	l.log.Warn("Redis unreachable", "error", err)
	l.opts.Observer.RedisError(l.ref())
}

// RedisUp is the outage hook's OnUp.
func (l *Loop) RedisUp(down time.Duration) {
	l.say("✅ Redis is back after %s", down.Round(time.Millisecond))
	l.log.Info("Redis reachable again", "down", down)
	select {
	case l.outages <- down:
	default: // a record is already pending; the log has them all
	}
}

// recordOutages writes the outages Redis has come back from into the
// activity log (what `tthost status` shows) and the event stream.
func (l *Loop) recordOutages(ctx context.Context) {
	for {
		select {
		case d := <-l.outages:
			msg := fmt.Sprintf("⚠️ Redis was unreachable for %s; the worker waited for it and lost nothing", d.Round(time.Millisecond))
			l.activity(ctx, msg)
			l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: "redis_outage", Code: "redis_unreachable", Text: d.String()})
		default:
			return
		}
	}
}
