package town

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// A town served by `tthost serve` hosts keeps three records of its own,
// none of which tt reads:
//
//   - the wanted agents (Keys.Wanted): a hash of agent id → WantedAgent,
//     written by `tthost spawn` and `tthost adopt`, removed by stop and
//     kill; every serve host claims from it;
//   - the hosts (Keys.Hosts): a hash of host id → HostRecord, the last
//     record each host wrote (capacity, load, version, heartbeat);
//   - each host's liveness key (Keys.HostAlive), renewed with one command
//     per heartbeat for all of the host's agents and expiring after the
//     host's lease TTL when the host dies. An agent's lease held by a host
//     (LeaseOwner.HostID) has no expiry of its own: it is as alive as its
//     host's liveness key.

// Wanted is the hash of agents that tthost hosts should serve.
func (k Keys) Wanted() string { return k.prefix + "tthost:wanted" }

// FleetWake is the list a serve host pushes to when it released agents,
// so the other hosts claim them at once rather than at their next scan.
func (k Keys) FleetWake() string { return k.prefix + "tthost:fleetwake" }

// WakeFleet tells the serve hosts to look at the wanted agents now.
func (s *Store) WakeFleet(ctx context.Context) error {
	p := s.rdb.Pipeline()
	p.LPush(ctx, s.keys.FleetWake(), "1")
	p.LTrim(ctx, s.keys.FleetWake(), 0, 0)
	_, err := p.Exec(ctx)
	return err
}

// Hosts is the hash of serve hosts' records.
func (k Keys) Hosts() string { return k.prefix + "tthost:hosts" }

// HostAlive is a serve host's liveness key.
func (k Keys) HostAlive(hostID string) string { return k.prefix + "tthost:host:" + hostID }

// WantedAgent is an agent registered for the town's serve hosts.
type WantedAgent struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CLI       string    `json:"cli,omitempty"`
	MaxRounds int       `json:"max_rounds"`
	Since     time.Time `json:"since"`
	// By says who registered it: "spawn" or "adopt".
	By string `json:"by,omitempty"`
}

// ParseWantedAgent decodes one wanted-agent record (outside input: any
// writer can put anything in the hash).
func ParseWantedAgent(id string, raw []byte) (WantedAgent, error) {
	var w WantedAgent
	if err := json.Unmarshal(raw, &w); err != nil {
		return WantedAgent{}, fmt.Errorf("wanted agent %s: %w", id, err)
	}
	if w.ID != id {
		return WantedAgent{}, fmt.Errorf("wanted agent %s: the record names agent %q", id, w.ID)
	}
	if _, err := ParseID(w.ID); err != nil {
		return WantedAgent{}, fmt.Errorf("wanted agent %s: %w", id, err)
	}
	if w.Name == "" {
		return WantedAgent{}, fmt.Errorf("wanted agent %s: no name", id)
	}
	if w.MaxRounds < 0 {
		return WantedAgent{}, fmt.Errorf("wanted agent %s: max_rounds %d is negative", id, w.MaxRounds)
	}
	return w, nil
}

// Want registers the agent for the town's serve hosts (replacing an
// earlier registration) and tells the hosts at once (the hash's keyspace
// event wakes their claim loops).
func (s *Store) Want(ctx context.Context, w WantedAgent) error {
	if _, err := ParseID(w.ID); err != nil {
		return err
	}
	if w.Since.IsZero() {
		w.Since = s.nowUTC()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.keys.Wanted(), w.ID, b).Err(); err != nil {
		return fmt.Errorf("register %s for the serve hosts: %w", w.Name, err)
	}
	return nil
}

// Unwant removes the agent from the wanted set; it reports whether it was
// there. The host serving it stops it through its stop flag, not this.
func (s *Store) Unwant(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.HDel(ctx, s.keys.Wanted(), id).Result()
	if err != nil {
		return false, fmt.Errorf("release %s from the serve hosts: %w", id, err)
	}
	return n > 0, nil
}

// WantedAgents reads the wanted set. Records that do not parse are left
// out and described in bad (nothing is deleted: a person decides).
func (s *Store) WantedAgents(ctx context.Context) (agents map[string]WantedAgent, bad []error, err error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.Wanted()).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read the wanted agents: %w", err)
	}
	agents = make(map[string]WantedAgent, len(m))
	for id, raw := range m {
		w, err := ParseWantedAgent(id, []byte(raw))
		if err != nil {
			bad = append(bad, err)
			continue
		}
		agents[id] = w
	}
	return agents, bad, nil
}

// IsWanted reports whether the agent is registered for the serve hosts.
func (s *Store) IsWanted(ctx context.Context, id string) (bool, error) {
	ok, err := s.rdb.HExists(ctx, s.keys.Wanted(), id).Result()
	if err != nil {
		return false, fmt.Errorf("read the wanted agents: %w", err)
	}
	return ok, nil
}

// HostRecord is what a serve host says of itself at every heartbeat.
type HostRecord struct {
	ID       string            `json:"id"`
	Hostname string            `json:"hostname"`
	PID      int               `json:"pid"`
	Version  string            `json:"version"`
	Capacity int               `json:"capacity"`
	Load     int               `json:"load"`
	Labels   map[string]string `json:"labels,omitempty"`
	Listen   string            `json:"listen,omitempty"`
	// LeaseTTLMillis is the host's lease TTL: how long after its last
	// heartbeat its agents may be taken by other hosts.
	LeaseTTLMillis int64 `json:"lease_ttl_ms"`
	// ReattachMillis is the host's reattach window: how long its plugins
	// keep running turns after the host is gone, for its next process.
	// Another host taking its agents over waits for it before delivering
	// their in-flight messages again.
	ReattachMillis int64     `json:"reattach_ms,omitempty"`
	Started        time.Time `json:"started"`
	Heartbeat      time.Time `json:"heartbeat"`
}

// LeaseTTL is LeaseTTLMillis as a duration.
func (r HostRecord) LeaseTTL() time.Duration {
	return time.Duration(r.LeaseTTLMillis) * time.Millisecond
}

var hostIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidHostID checks a host id: 1–128 letters, digits, '.', '_' or '-',
// starting with a letter or digit (it is part of a Redis key and of log
// lines).
func ValidHostID(id string) error {
	if !hostIDPattern.MatchString(id) {
		return fmt.Errorf("invalid host id %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// ParseHostRecord decodes a host record (outside input).
func ParseHostRecord(id string, raw []byte) (HostRecord, error) {
	var r HostRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return HostRecord{}, fmt.Errorf("host %s: %w", id, err)
	}
	if r.ID != id {
		return HostRecord{}, fmt.Errorf("host %s: the record names host %q", id, r.ID)
	}
	if r.Capacity < 0 || r.Load < 0 || r.LeaseTTLMillis < 0 {
		return HostRecord{}, fmt.Errorf("host %s: negative capacity, load or lease TTL", id)
	}
	return r, nil
}

// HostBeat renews the host's liveness for ttl and writes its record, in
// one round trip. existed is false when the liveness key had expired (or
// never existed): other hosts may have taken the host's agents since, so
// the caller checks its leases.
func (s *Store) HostBeat(ctx context.Context, r HostRecord, ttl time.Duration) (existed bool, err error) {
	if err := ValidHostID(r.ID); err != nil {
		return false, err
	}
	r.Heartbeat = s.nowUTC()
	r.LeaseTTLMillis = ttl.Milliseconds()
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	p := s.rdb.Pipeline()
	prev := p.SetArgs(ctx, s.keys.HostAlive(r.ID), r.PID, redis.SetArgs{TTL: ttl, Get: true})
	p.HSet(ctx, s.keys.Hosts(), r.ID, b)
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("heartbeat of host %s: %w", r.ID, err)
	}
	return prev.Err() == nil, nil
}

// RemoveHost deletes the host's liveness key and record: a clean stop.
func (s *Store) RemoveHost(ctx context.Context, id string) error {
	p := s.rdb.TxPipeline()
	p.Del(ctx, s.keys.HostAlive(id))
	p.HDel(ctx, s.keys.Hosts(), id)
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("remove host %s: %w", id, err)
	}
	return nil
}

// HostsAlive reports, for each id, whether its liveness key exists, with
// one MGET.
func (s *Store) HostsAlive(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.keys.HostAlive(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read host liveness: %w", err)
	}
	for i, v := range vals {
		out[ids[i]] = v != nil
	}
	return out, nil
}

// HostStatus is a host record and whether the host is alive now.
type HostStatus struct {
	HostRecord
	Alive bool
}

// Hosts lists the town's serve hosts, alive ones first, then by id.
// Records that do not parse are described in bad.
func (s *Store) Hosts(ctx context.Context) (hosts []HostStatus, bad []error, err error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.Hosts()).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read the hosts: %w", err)
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	alive, err := s.HostsAlive(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	for id, raw := range m {
		r, err := ParseHostRecord(id, []byte(raw))
		if err != nil {
			bad = append(bad, err)
			continue
		}
		hosts = append(hosts, HostStatus{HostRecord: r, Alive: alive[id]})
	}
	sort.Slice(hosts, func(i, j int) bool {
		if hosts[i].Alive != hosts[j].Alive {
			return hosts[i].Alive
		}
		return hosts[i].ID < hosts[j].ID
	})
	return hosts, bad, nil
}

// ForgetHost removes a dead host's record (its liveness key is gone).
func (s *Store) ForgetHost(ctx context.Context, id string) error {
	return s.rdb.HDel(ctx, s.keys.Hosts(), id).Err()
}

// LeaseOwners reads the leases of the agents with one MGET: the owner of
// each agent that has a lease (agents without one are missing from the
// map; a lease that does not parse is reported with an empty owner).
func (s *Store) LeaseOwners(ctx context.Context, agents []string) (map[string]LeaseOwner, error) {
	out := make(map[string]LeaseOwner, len(agents))
	if len(agents) == 0 {
		return out, nil
	}
	keys := make([]string, len(agents))
	for i, a := range agents {
		keys[i] = s.keys.Lease(a)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the worker leases: %w", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var o LeaseOwner
		_ = json.Unmarshal([]byte(str), &o)
		out[agents[i]] = o
	}
	return out, nil
}

// AliveServeHosts returns the live hosts (by record) whose labels match
// every key=value of want: `tthost spawn` asks whether a host will claim
// its agent.
func (s *Store) AliveServeHosts(ctx context.Context, want map[string]string) ([]HostRecord, error) {
	hosts, _, err := s.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	var out []HostRecord
	for _, h := range hosts {
		if h.Alive && LabelsMatch(h.Labels, want) {
			out = append(out, h.HostRecord)
		}
	}
	return out, nil
}

// LabelsMatch reports whether a host with labels may serve an agent that
// wants the given ones: every label the host sets must match the agent's
// value for that key (a host labelled cli=codex serves only codex agents;
// a host without labels serves every agent).
func LabelsMatch(host, agent map[string]string) bool {
	for k, v := range host {
		if agent[k] != v {
			return false
		}
	}
	return true
}
