package town

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// LeaseOwner identifies a lease holder.
type LeaseOwner struct {
	Token   string    `json:"token"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

// Lease is a held worker lease.
type Lease struct {
	s     *Store
	agent string
	Owner LeaseOwner
	ttl   time.Duration
}

// LeaseKey is the lease key of an agent.
func (k Keys) Lease(id string) string { return k.prefix + "tthost:lease:" + canonicalOr(id) }

var leaseRefreshScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if string.find(v, ARGV[1], 1, true) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`)

var leaseReleaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

var leaseTakeoverScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

// AcquireLease takes the agent's worker lease for ttl. When another holder
// has it, holderDead decides whether that holder is gone (tthost passes a
// check of the pid on this host); a dead holder's lease is taken over, a
// live one's is refused with ErrLeaseHeld naming the holder.
func (s *Store) AcquireLease(ctx context.Context, agent string, owner LeaseOwner, ttl time.Duration, holderDead func(LeaseOwner) bool) (*Lease, error) {
	if owner.Token == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		owner.Token = hex.EncodeToString(b[:])
	}
	if owner.Started.IsZero() {
		owner.Started = s.nowUTC()
	}
	val, err := json.Marshal(owner)
	if err != nil {
		return nil, err
	}
	key := s.keys.Lease(agent)
	ok, err := s.rdb.SetNX(ctx, key, val, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("take the worker lease of %s: %w", agent, err)
	}
	if !ok {
		cur, err := s.rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		var holder LeaseOwner
		_ = json.Unmarshal([]byte(cur), &holder)
		if cur != "" && (holderDead == nil || !holderDead(holder)) {
			left, _ := s.rdb.PTTL(ctx, key).Result()
			return nil, fmt.Errorf("%w: pid %d on host %s since %s (the lease expires in %s unless renewed): stop that worker first (tthost stop <agent>)",
				ErrLeaseHeld, holder.PID, holder.Host, holder.Started.Format(time.RFC3339), left.Round(time.Second))
		}
		took, err := leaseTakeoverScript.Run(ctx, s.rdb, []string{key}, cur, string(val), ttl.Milliseconds()).Int()
		if err != nil {
			return nil, err
		}
		if took != 1 {
			return nil, fmt.Errorf("%w: another worker took it at the same moment", ErrLeaseHeld)
		}
	}
	return &Lease{s: s, agent: agent, Owner: owner, ttl: ttl}, nil
}

// Refresh extends the lease; it re-takes a lease that expired meanwhile and
// fails with ErrLeaseHeld when someone else holds it now.
func (l *Lease) Refresh(ctx context.Context) error {
	val, _ := json.Marshal(l.Owner)
	ok, err := leaseRefreshScript.Run(ctx, l.s.rdb, []string{l.s.keys.Lease(l.agent)}, `"token":"`+l.Owner.Token+`"`, string(val), l.ttl.Milliseconds()).Int()
	if err != nil {
		return err
	}
	if ok != 1 {
		return fmt.Errorf("%w: the lease of %s was taken over", ErrLeaseHeld, l.agent)
	}
	return nil
}

// Release gives the lease up if it is still ours.
func (l *Lease) Release(ctx context.Context) error {
	return leaseReleaseScript.Run(ctx, l.s.rdb, []string{l.s.keys.Lease(l.agent)}, `"token":"`+l.Owner.Token+`"`).Err()
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
