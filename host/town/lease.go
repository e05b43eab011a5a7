package town

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A worker lease says which tthost process serves an agent. Tinytown has
// none: two workers for one agent both drain its inbox. With in-flight
// bookkeeping that would be worse (each would re-deliver the other's
// in-flight messages as crash leftovers), so tthost's agent-loop takes the
// lease `tt:{town}:tthost:lease:{agent}` before it serves and refreshes it
// with its heartbeat. The lease expires on its own if its holder dies
// without releasing it; on the same host a dead holder is detected at once
// (its pid is gone) so a restart after kill -9 does not wait for the TTL.

// ErrLeaseHeld is returned when another live worker serves the agent.
var ErrLeaseHeld = errors.New("agent is already served by another worker")

// ErrFenced is returned by a fenced write (Worker's Intake, Ack, Requeue,
// DeadLetter, Reroute) and by Refresh once the lease it carries is no
// longer the agent's current lease: another worker took the agent over.
// Redis refused the write; nothing was changed.
var ErrFenced = errors.New("the worker lease was taken over: this worker no longer serves the agent")

// LeaseOwner identifies a lease holder.
type LeaseOwner struct {
	// Token is the fencing token: "<generation>-<random>". The generation
	// counts the agent's leases (tt:{town}:tthost:leasegen:{agent}); every
	// acquisition, takeover included, gets a new one.
	Token   string    `json:"token"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	// HostID is set when a `tthost serve` host holds the lease for all
	// its agents: such a lease has no expiry of its own and lives as long
	// as the host's liveness key (Keys.HostAlive), which the host renews
	// with one heartbeat for all its agents.
	HostID string `json:"host_id,omitempty"`
	// ReattachMillis is the holder's reattach window (see
	// HostRecord.ReattachMillis): its plugins may run its turn that long
	// after it is gone.
	ReattachMillis int64 `json:"reattach_ms,omitempty"`
}

// Generation is the lease generation in the token (0 if it has none).
func (o LeaseOwner) Generation() int64 {
	g, _, _ := strings.Cut(o.Token, "-")
	n, _ := strconv.ParseInt(g, 10, 64)
	return n
}

// Lease is a held worker lease.
type Lease struct {
	s     *Store
	agent string
	Owner LeaseOwner
	ttl   time.Duration
	// Previous is the last holder before this one that did not release the
	// lease (nil when there is none), from the record that outlives the
	// lease key. TookOver is set
	// when Previous still held an unexpired lease that was taken over
	// because the caller judged it dead; otherwise its lease had been
	// released or had expired.
	Previous *LeaseOwner
	TookOver bool
}

// Lease is the lease key of an agent; LeaseGen counts its generations;
// LeaseLast is the last holder's record, kept after the lease expires so
// a successor knows whom it succeeds.
func (k Keys) Lease(id string) string    { return k.prefix + "tthost:lease:" + canonicalOr(id) }
func (k Keys) LeaseGen(id string) string { return k.prefix + "tthost:leasegen:" + canonicalOr(id) }
func (k Keys) LeaseLast(id string) string {
	return k.prefix + "tthost:leaselast:" + canonicalOr(id)
}

// fenceCheck is the Lua prologue of every fenced script: KEYS[1] is the
// lease key and ARGV[1] the token ("" = unfenced, for tools that act
// without a lease). The token is matched as the JSON field it is stored as.
const fenceCheck = `
if ARGV[1] ~= '' then
  local v = redis.call('GET', KEYS[1])
  if not v or not string.find(v, '"token":"' .. ARGV[1] .. '"', 1, true) then
    return redis.error_reply('FENCED lease token ' .. ARGV[1] .. ' is not the current lease')
  end
end
`

// isFenced maps a script's FENCED error reply to ErrFenced.
func isFenced(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "FENCED")
}

// fenceErr turns a FENCED reply into ErrFenced (wrapped with what), and
// wraps any other error.
func fenceErr(what string, err error) error {
	if isFenced(err) {
		return fmt.Errorf("%s: %w", what, ErrFenced)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// leaseAcquireScript takes the lease when it is free, or when it still
// holds exactly ARGV[5] (a holder the caller judged dead). It draws a new
// generation, stores the owner JSON with the token spliced in, and records
// it as the last holder.
// KEYS: lease, gen, last. ARGV: expected ("" = must be free), json prefix,
// random part, json suffix, ttl ms (0: no expiry, a host-bound lease).
var leaseAcquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return {0, v} end
local gen = redis.call('INCR', KEYS[2])
local token = gen .. '-' .. ARGV[3]
local val = ARGV[2] .. token .. ARGV[4]
if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[1], val, 'PX', ARGV[5])
else redis.call('SET', KEYS[1], val) end
local prev = redis.call('GET', KEYS[3]) or ''
redis.call('SET', KEYS[3], val)
return {1, token, prev}
`)

// leaseRefreshScript extends a lease still ours. A lease that expired with
// nobody taking the agent since (the generation did not move) is ours to
// re-take: no other worker can have acted in between. Anything else is
// lost. KEYS: lease, gen. ARGV: token, owner JSON, ttl ms, generation.
var leaseRefreshScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  if redis.call('GET', KEYS[2]) == ARGV[4] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
  end
  return 0
end
if string.find(v, '"token":"' .. ARGV[1] .. '"', 1, true) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`)

// leaseReleaseScript gives the lease up if it is ours, and with it the
// last-holder record: a successor of a clean release has nobody to fence.
// KEYS: lease, last. ARGV: token.
var leaseReleaseScript = redis.NewScript(`
local mine = '"token":"' .. ARGV[1] .. '"'
local l = redis.call('GET', KEYS[2])
if l and string.find(l, mine, 1, true) then redis.call('DEL', KEYS[2]) end
local v = redis.call('GET', KEYS[1])
if v and string.find(v, mine, 1, true) then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// AcquireLease takes the agent's worker lease for ttl (0: without expiry,
// for a host-bound lease whose owner names its HostID). When another holder
// has it, holderDead decides whether that holder is gone (tthost passes a
// check of the pid on this host); a dead holder's lease is taken over, a
// live one's is refused with ErrLeaseHeld naming the holder. Every
// acquisition draws a new generation, so the fencing token of any earlier
// holder stops working at once.
func (s *Store) AcquireLease(ctx context.Context, agent string, owner LeaseOwner, ttl time.Duration, holderDead func(LeaseOwner) bool) (*Lease, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	random := hex.EncodeToString(b[:])
	if owner.Started.IsZero() {
		owner.Started = s.nowUTC()
	}
	// The JSON with a placeholder token, split around it so the script
	// can splice in the generation it draws.
	const placeholder = "@@token@@"
	owner.Token = placeholder
	val, err := json.Marshal(owner)
	if err != nil {
		return nil, err
	}
	pre, post, ok := strings.Cut(string(val), placeholder)
	if !ok {
		return nil, fmt.Errorf("lease owner JSON: token placeholder not found")
	}
	k := s.keys
	keys := []string{k.Lease(agent), k.LeaseGen(agent), k.LeaseLast(agent)}
	expected := ""
	for attempt := 0; attempt < 2; attempt++ {
		res, err := leaseAcquireScript.Run(ctx, s.rdb, keys, expected, pre, random, post, ttl.Milliseconds()).Slice()
		if err != nil {
			return nil, fmt.Errorf("take the worker lease of %s: %w", agent, err)
		}
		if n, _ := res[0].(int64); n == 1 {
			owner.Token, _ = res[1].(string)
			l := &Lease{s: s, agent: agent, Owner: owner, ttl: ttl, TookOver: expected != ""}
			if prev, _ := res[2].(string); prev != "" {
				var p LeaseOwner
				if json.Unmarshal([]byte(prev), &p) == nil {
					l.Previous = &p
				}
			}
			return l, nil
		}
		cur, _ := res[1].(string)
		var holder LeaseOwner
		_ = json.Unmarshal([]byte(cur), &holder)
		if expected != "" {
			break // the holder changed between the two attempts
		}
		if holderDead == nil || !holderDead(holder) {
			left, _ := s.rdb.PTTL(ctx, k.Lease(agent)).Result()
			return nil, fmt.Errorf("%w: pid %d on host %s since %s (the lease expires in %s unless renewed): stop that worker first (tthost stop <agent>)",
				ErrLeaseHeld, holder.PID, holder.Host, holder.Started.Format(time.RFC3339), left.Round(time.Second))
		}
		expected = cur // a dead holder: take its lease over, if it is still the same
	}
	return nil, fmt.Errorf("%w: another worker took it at the same moment", ErrLeaseHeld)
}

// TTL is the lease's time to live, renewed by Refresh; 0 for a lease
// bound to a serve host (LeaseOwner.HostID), which lives as long as the
// host's liveness key.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Agent is the agent the lease is for.
func (l *Lease) Agent() string { return l.agent }

// Refresh extends the lease. A lease that expired while nobody else took
// the agent is re-taken; one that another worker holds (or held since)
// fails with ErrFenced.
func (l *Lease) Refresh(ctx context.Context) error {
	if l.ttl <= 0 {
		return nil // host-bound: the host's heartbeat keeps it
	}
	val, _ := json.Marshal(l.Owner)
	k := l.s.keys
	ok, err := leaseRefreshScript.Run(ctx, l.s.rdb, []string{k.Lease(l.agent), k.LeaseGen(l.agent)},
		l.Owner.Token, string(val), l.ttl.Milliseconds(), l.Owner.Generation()).Int()
	if err != nil {
		return fmt.Errorf("refresh the worker lease of %s: %w", l.agent, err)
	}
	if ok != 1 {
		return fmt.Errorf("refresh the worker lease of %s: %w", l.agent, ErrFenced)
	}
	return nil
}

// Release gives the lease up if it is still ours.
func (l *Lease) Release(ctx context.Context) error {
	k := l.s.keys
	return leaseReleaseScript.Run(ctx, l.s.rdb, []string{k.Lease(l.agent), k.LeaseLast(l.agent)}, l.Owner.Token).Err()
}

// LeaseHolder returns who holds the agent's lease, or nil.
func (s *Store) LeaseHolder(ctx context.Context, agent string) (*LeaseOwner, error) {
	cur, err := s.rdb.Get(ctx, s.keys.Lease(agent)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var o LeaseOwner
	if err := json.Unmarshal([]byte(cur), &o); err != nil {
		return nil, fmt.Errorf("lease of %s: %w", agent, err)
	}
	return &o, nil
}
