package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
)

// Policy is [tthost] notifications in tinytown.toml.
type Policy string

const (
	// PolicyAuto uses keyspace notifications when the server delivers
	// them and turns them on (CONFIG SET) when it permits. "" means auto.
	PolicyAuto = Policy(config.NotificationsAuto)
	// PolicyOff neither uses nor enables them: the caller polls.
	PolicyOff = Policy(config.NotificationsOff)
)

// Mode is the path a town's workers are on.
type Mode string

const (
	// ModeKeyspace: keyspace notifications arrive (a probe proved it);
	// watches fire within milliseconds of a write.
	ModeKeyspace Mode = "keyspace"
	// ModePoll: they do not, or the policy forbids them; watches never
	// fire and writers without a wake signal are seen at the next poll.
	ModePoll Mode = "poll"
)

// DefaultProbeTimeout bounds the wait for a probe's events. A local
// server delivers them in well under a millisecond; a second allows for a
// distant one without holding up a worker's start for long when they
// never come.
const DefaultProbeTimeout = time.Second

// probeSubscribeTimeout bounds the wait for the probe's SUBSCRIBE to be
// confirmed: a server that answers commands answers this.
const probeSubscribeTimeout = 5 * time.Second

// Status is what Ensure found and did.
type Status struct {
	Mode   Mode   `json:"mode"`
	Policy Policy `json:"policy"`
	// Flags is notify-keyspace-events as the server reports it, after
	// any change Ensure made. FlagsKnown is false when CONFIG GET was
	// refused (a managed Redis); Flags is "" then.
	Flags      string `json:"flags"`
	FlagsKnown bool   `json:"flags_known"`
	// Enabled is true when this Ensure turned the flags on with CONFIG
	// SET; Previous is the value it found.
	Enabled  bool   `json:"enabled_by_tthost,omitempty"`
	Previous string `json:"previous_flags,omitempty"`
	// Verified is true when a probe's events arrived (always, in
	// ModeKeyspace).
	Verified bool `json:"verified"`
	// Reason says why Mode is ModePoll; "" in ModeKeyspace.
	Reason string `json:"reason,omitempty"`
}

// String is one line for people, e.g. `keyspace (flags "g$lhK", enabled
// by tthost; was "")` or `poll (CONFIG is not permitted: …)`.
func (s Status) String() string {
	if s.Mode == ModeKeyspace {
		switch {
		case !s.FlagsKnown:
			return "keyspace (CONFIG is not permitted, but a probe's events arrived)"
		case s.Enabled:
			return fmt.Sprintf("keyspace (flags %q, enabled by tthost; was %q)", s.Flags, s.Previous)
		}
		return fmt.Sprintf("keyspace (flags %q)", s.Flags)
	}
	return fmt.Sprintf("%s (%s)", s.Mode, s.Reason)
}

// EnsureOptions tune Ensure.
type EnsureOptions struct {
	// Policy is PolicyAuto ("" too) or PolicyOff.
	Policy Policy
	// ProbeTimeout bounds the wait for the probe's events;
	// DefaultProbeTimeout when 0.
	ProbeTimeout time.Duration
}

// errNotDelivered: the probe's events did not all arrive in time.
var errNotDelivered = errors.New("no keyspace events arrive")

// Ensure finds out whether rdb's server delivers the keyspace events a
// Notifier needs, turns them on when they are off and policy permits, and
// proves delivery end to end:
//
//  1. CONFIG GET notify-keyspace-events. A refusal (renamed command, ACL
//     NOPERM, a managed service) is not an error: Ensure goes on to the
//     probe, since a service may have them on without letting us look.
//  2. With PolicyOff it stops here: ModePoll, Flags for information.
//  3. When flags lack some of RequiredFlags it runs CONFIG SET with the
//     current value plus the missing flags, so flags that others set stay.
//     A refusal gives ModePoll with the reason.
//  4. A probe subscribes to the keyspace channels of three keys under
//     tt:<town>:tthost:notify-probe:, writes them in one transaction
//     (LPUSH, HSET, SET, DEL) and waits up to ProbeTimeout for an event of
//     each class (l, h, $, g). Some servers and proxies accept CONFIG SET
//     and deliver nothing, and a managed service may deliver without
//     CONFIG: only the probe says which, for about one round trip.
//
// The error is non-nil only when the server could not be asked at all
// (unreachable, loading, ctx done); every refusal is a ModePoll Status.
func Ensure(ctx context.Context, rdb redis.UniversalClient, keys town.Keys, opts EnsureOptions) (Status, error) {
	policy := opts.Policy
	if policy == "" {
		policy = PolicyAuto
	}
	if policy != PolicyAuto && policy != PolicyOff {
		return Status{}, fmt.Errorf("unknown notifications policy %q: use %q or %q", policy, PolicyAuto, PolicyOff)
	}
	st := Status{Mode: ModePoll, Policy: policy}

	flags, err := configGet(ctx, rdb)
	var configErr error
	switch {
	case err == nil:
		st.Flags, st.FlagsKnown = flags, true
	case isRefusal(err):
		configErr = err
	default:
		return Status{}, fmt.Errorf("read notify-keyspace-events: %w", err)
	}
	if policy == PolicyOff {
		st.Reason = fmt.Sprintf("[tthost] notifications = %q", PolicyOff)
		return st, nil
	}

	if missing := MissingFlags(flags); st.FlagsKnown && missing != "" {
		err := rdb.ConfigSet(ctx, "notify-keyspace-events", flags+missing).Err()
		switch {
		case err == nil:
			st.Enabled, st.Previous = true, flags
			st.Flags = flags + missing
			if now, err := configGet(ctx, rdb); err == nil {
				st.Flags = now // as the server normalises it
			}
		case isRefusal(err):
			st.Reason = fmt.Sprintf("notify-keyspace-events is %q, without %q, and CONFIG SET is not permitted: %v",
				flags, missing, err)
			return st, nil
		default:
			return Status{}, fmt.Errorf("set notify-keyspace-events: %w", err)
		}
	}

	timeout := opts.ProbeTimeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	err = probe(ctx, rdb, keys, timeout)
	switch {
	case err == nil:
		st.Mode, st.Verified = ModeKeyspace, true
	case errors.Is(err, errNotDelivered) && configErr != nil:
		st.Reason = fmt.Sprintf("CONFIG is not permitted (%v) and %v", configErr, err)
	case errors.Is(err, errNotDelivered):
		st.Reason = fmt.Sprintf("notify-keyspace-events is %q but %v: the server, or a proxy in front of it, does not pass them on", st.Flags, err)
	case isRefusal(err) && configErr != nil:
		st.Reason = fmt.Sprintf("CONFIG is not permitted (%v) and the keyspace probe was refused: %v", configErr, err)
	case isRefusal(err):
		st.Reason = fmt.Sprintf("the keyspace probe was refused: %v", err)
	default:
		return Status{}, fmt.Errorf("keyspace probe: %w", err)
	}
	return st, nil
}

func configGet(ctx context.Context, rdb redis.UniversalClient) (string, error) {
	m, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return "", err
	}
	v, ok := m["notify-keyspace-events"]
	if !ok {
		return "", errNoParameter
	}
	return v, nil
}

// errNoParameter: CONFIG GET answered without notify-keyspace-events (a
// Redis-protocol server that has no such setting).
var errNoParameter = errors.New("CONFIG GET knows no notify-keyspace-events")

// isRefusal tells a server's "no" (an error reply that will be the same
// next time) from trouble worth an error: no answer, or a transient reply.
func isRefusal(err error) bool {
	if errors.Is(err, errNoParameter) {
		return true
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) || errors.Is(err, redis.Nil) {
		return false
	}
	for _, transient := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"} {
		if redis.HasErrorPrefix(err, transient) {
			return false
		}
	}
	return true
}

// isTimeout reports a read that timed out (a ReceiveTimeout with nothing
// to receive), which leaves the connection usable.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probe proves end to end that the server delivers an event of each class
// a Notifier needs on the keyspace channels of rdb's database.
func probe(ctx context.Context, rdb redis.UniversalClient, keys town.Keys, timeout time.Duration) error {
	db := dbOf(rdb)
	var id [6]byte
	_, _ = rand.Read(id[:])
	base := keys.Prefix() + "tthost:notify-probe:" + hex.EncodeToString(id[:])
	list, hash, str := base+":l", base+":h", base+":s"
	// Each class is proven by one event: the channel and the event name.
	want := map[string]string{
		"l": keyspaceChannel(db, list) + " lpush",
		"h": keyspaceChannel(db, hash) + " hset",
		"$": keyspaceChannel(db, str) + " set",
		"g": keyspaceChannel(db, str) + " del",
	}

	ps := rdb.Subscribe(ctx)
	defer ps.Close()
	chans := []string{keyspaceChannel(db, list), keyspaceChannel(db, hash), keyspaceChannel(db, str)}
	if err := ps.Subscribe(ctx, chans...); err != nil {
		return err
	}
	// The probe's own bookkeeping is simple: nothing else uses this
	// connection, so its confirmations are its own.
	deadline := time.Now().Add(probeSubscribeTimeout)
	for confirmed := 0; confirmed < len(chans); {
		msg, err := ps.ReceiveTimeout(ctx, time.Until(deadline))
		if err != nil {
			return err
		}
		if _, ok := msg.(*redis.Subscription); ok {
			confirmed++
		}
	}

	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, list, "1")
		p.HSet(ctx, hash, "f", "1")
		p.Set(ctx, str, "1", 0)
		p.Del(ctx, list, hash, str)
		return nil
	}); err != nil {
		return err
	}

	deadline = time.Now().Add(timeout)
	for len(want) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return notDelivered(want, timeout)
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if isTimeout(err) {
			return notDelivered(want, timeout)
		}
		if err != nil {
			return err
		}
		if m, ok := msg.(*redis.Message); ok {
			for class, ev := range want {
				if ev == m.Channel+" "+m.Payload {
					delete(want, class)
				}
			}
		}
	}
	return nil
}

func notDelivered(missing map[string]string, timeout time.Duration) error {
	var classes []string
	for _, c := range []string{"l", "h", "$", "g"} {
		if _, ok := missing[c]; ok {
			classes = append(classes, c)
		}
	}
	return fmt.Errorf("%w (a probe saw none of class %s within %v)", errNotDelivered, strings.Join(classes, ", "), timeout)
}

// dbOf is the database rdb's commands use; keyspace channels name it.
// Clients without a single database (a cluster) use 0.
func dbOf(rdb redis.UniversalClient) int {
	if c, ok := rdb.(interface{ Options() *redis.Options }); ok {
		return c.Options().DB
	}
	return 0
}
