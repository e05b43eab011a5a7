package town

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Worker is the lease holder's hand on an agent's messages. Every write
// that moves a message (intake, ack, requeue, dead letter, re-route)
// carries the lease's fencing token, and the script that does it checks
// the token against the lease key inside Redis: once another worker has
// taken the agent over, a stale worker's write fails with ErrFenced and
// changes nothing. The check is Redis's, not the caller's, so a worker
// that was frozen (SIGSTOP, a long GC pause, a partition) and comes back
// cannot move a message it no longer owns, however late it acts.
type Worker struct {
	s     *Store
	agent string
	token string
}

// Worker returns the fenced message operations of the lease's agent.
func (l *Lease) Worker() *Worker { return &Worker{s: l.s, agent: l.agent, token: l.Owner.Token} }

// Intake is Store.Intake, fenced.
func (w *Worker) Intake(ctx context.Context, opts IntakeOptions) (IntakeResult, error) {
	return w.s.intake(ctx, w.agent, w.token, opts)
}

// Ack is Store.Ack, fenced.
func (w *Worker) Ack(ctx context.Context, entries ...Entry) error {
	return w.s.ack(ctx, w.agent, w.token, entries)
}

// Requeue is Store.Requeue, fenced.
func (w *Worker) Requeue(ctx context.Context, entries ...Entry) (int, error) {
	return w.s.requeue(ctx, w.agent, w.token, entries)
}

// DeadLetter is Store.DeadLetter, fenced.
func (w *Worker) DeadLetter(ctx context.Context, e Entry, reason string) error {
	return w.s.deadLetter(ctx, w.agent, w.token, e, reason)
}

// rerouteScript moves one in-flight element, untagged, to another agent's
// inbox (front or back, as Send would put it) and wakes that agent; it
// moves nothing when the recipient has no agent record.
// KEYS: lease, inflight, recipient agent, recipient inbox, recipient wake.
// ARGV: fence token, element, raw message, "front" or "back".
var rerouteScript = redis.NewScript(fenceCheck + `
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 0 then return 0 end
if ARGV[4] == 'front' then redis.call('LPUSH', KEYS[4], ARGV[3])
else redis.call('RPUSH', KEYS[4], ARGV[3]) end
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 0)
redis.call('EXPIRE', KEYS[5], 3600)
return 1
`)

// Reroute hands a message addressed to another agent to that agent's inbox,
// with its bytes unchanged, atomically. It fails with ErrAgentNotFound when
// the recipient does not exist (dead-letter it instead) and with
// ErrNotInFlight when the element is no longer in flight.
func (w *Worker) Reroute(ctx context.Context, e Entry) error {
	if e.Msg == nil {
		return fmt.Errorf("re-route for %s: %w: the message did not parse", w.agent, ErrInvalidMessage)
	}
	to := e.Msg.To
	where := "back"
	if e.Msg.Priority.Front() {
		where = "front"
	}
	k := w.s.keys
	n, err := rerouteScript.Run(ctx, w.s.rdb,
		[]string{k.Lease(w.agent), k.InFlight(w.agent), k.Agent(to), k.Inbox(to), k.Wake(to)},
		w.token, e.Stored, e.Raw, where).Int()
	switch {
	case err != nil:
		return fenceErr("re-route for "+w.agent, err)
	case n == -1:
		return fmt.Errorf("re-route for %s: %w: %s", w.agent, ErrAgentNotFound, to)
	case n == 0:
		return fmt.Errorf("re-route for %s: %w", w.agent, ErrNotInFlight)
	}
	return nil
}
