// Package fleet is `tthost serve`: one host process that runs the agent
// loops of many agents as goroutines, over one backend manager (one plugin
// process per backend, shared by all the host's sessions) and one
// notification connection, and that shares a town with other hosts
// through Redis.
//
// Which agents a town's hosts serve is explicit: `tthost spawn` and
// `tthost adopt` register agents as wanted (town.Keys.Wanted); stop and
// kill release them. Each host claims wanted agents with the per-agent
// worker lease, bound to the host (town.LeaseOwner.HostID): such a lease
// has no expiry of its own and lives as long as the host's liveness key,
// which one heartbeat renews for all of the host's agents. When a host
// dies, its liveness key expires after the lease TTL and the other hosts
// take its agents over; every message move stays fenced by the lease's
// token, so a host that comes back late is refused by Redis itself.
//
//	host.go     Host: options, Run, heartbeat, self-fencing, shutdown
//	claim.go    the claim scan: wanted agents, fair share, capacity, labels
//	agent.go    one served agent: its loop, log, wakeups, sessions, exit
package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/host/agentloop"
	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/procinfo"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/client"
)

// DefaultLeaseTTL is how long after its last heartbeat a host's agents may
// be taken by other hosts. 15 s rides out a typical Redis failover
// (Sentinel promotes a replica within a few seconds) without hosts
// dropping their agents, while a dead host's agents are served again
// within about 15 s.
const DefaultLeaseTTL = 15 * time.Second

// MinLeaseTTL bounds --lease-ttl from below: the heartbeat runs every
// third of it and must fit a Redis round trip with room to spare.
const MinLeaseTTL = time.Second

// Metrics is what a host reports to its metrics (host/metrics); nil
// reports nothing.
type Metrics interface {
	agentloop.Observer
	SetAgentsServed(n int)
	LeaseTakeover()
	RedisErrorHost()
	Forget(a agentloop.AgentRef)
}

// Options configures a Host.
type Options struct {
	TownDir string
	Config  *config.Config
	Store   *town.Store
	// Backends opens every agent's sessions: one manager for the host.
	Backends agentloop.Backends
	// Notifier is the host's one notification connection (nil, or in poll
	// mode: the agents poll).
	Notifier *notify.Notifier
	// HostID names the host in the town; Hostname and PID are recorded.
	HostID   string
	Hostname string
	// Capacity is the most agents the host serves at once.
	Capacity int
	// Labels restrict which agents the host claims (cli=codex: only
	// agents whose CLI is codex).
	Labels map[string]string
	// LeaseTTL is DefaultLeaseTTL when 0.
	LeaseTTL time.Duration
	// Listen is recorded for `tthost hosts` (the metrics address).
	Listen  string
	Version string
	// ToolDir is put first on every CLI's PATH (see agentloop.Options).
	ToolDir string
	Logger  hclog.Logger
	Metrics Metrics
}

// Host serves the agents it claims until its Run's context ends.
type Host struct {
	opts    Options
	store   *town.Store
	log     hclog.Logger
	ttl     time.Duration
	started time.Time
	metrics Metrics

	mu       sync.Mutex
	agents   map[string]*served   // by agent id
	retryAt  map[string]time.Time // agents whose loop failed: not claimed again before
	failures map[string]int
	// unclaimed are the agents no host served at the last scan: the next
	// scan claims them beyond the fair share.
	unclaimed map[string]bool
	badSeen   map[string]bool // wanted records already reported as bad
	closing   bool
	detaching atomic.Bool // Detach: hand everything to a successor process

	lastBeatOK atomic.Int64 // unix nanos of the start of the last successful heartbeat
	fenced     atomic.Bool  // the host gave up its leases for lack of Redis
	kick       chan struct{}
	beatNow    chan struct{} // the load changed: write the record now
	wg         sync.WaitGroup
}

// New checks the options and prepares a host.
func New(opts Options) (*Host, error) {
	if err := town.ValidHostID(opts.HostID); err != nil {
		return nil, err
	}
	if opts.Capacity < 1 {
		return nil, fmt.Errorf("capacity must be 1 or more, got %d", opts.Capacity)
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LeaseTTL < MinLeaseTTL {
		return nil, fmt.Errorf("lease TTL %s is too short: use %s or more", opts.LeaseTTL, MinLeaseTTL)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	h := &Host{
		opts: opts, store: opts.Store, log: opts.Logger.Named("serve"), ttl: opts.LeaseTTL, metrics: opts.Metrics,
		agents: map[string]*served{}, retryAt: map[string]time.Time{}, failures: map[string]int{},
		unclaimed: map[string]bool{}, badSeen: map[string]bool{}, kick: make(chan struct{}, 1), beatNow: make(chan struct{}, 1),
	}
	if h.metrics == nil {
		h.metrics = nopMetrics{}
	}
	return h, nil
}

// LeaseTTL is the host's lease TTL.
func (h *Host) LeaseTTL() time.Duration { return h.ttl }

// beatEvery is the heartbeat interval: a third of the TTL, so two beats
// may fail before the host's agents can be taken.
func (h *Host) beatEvery() time.Duration { return h.ttl / 3 }

// selfFenceAfter is how long the host serves on without a successful
// heartbeat. Past it the host stops its agents' turns and gives their
// leases up, so that by the time its liveness key has expired and another
// host takes an agent over, the agent's CLI has stopped (within the stop
// grace): no two runs of a message overlap.
func (h *Host) selfFenceAfter() time.Duration {
	return max(h.ttl-h.stopGrace()-time.Second, h.ttl/2)
}

func (h *Host) stopGrace() time.Duration {
	return time.Duration(h.opts.Config.TTHost.StopGraceSecs) * time.Second
}

// takeoverFence is how long a host that took an agent from a host whose
// liveness expired waits before delivering the agent's in-flight messages
// again: the earlier host stopped its turns at selfFenceAfter (or, if it
// was frozen, its plugins did client.HostLostAfter after it stopped
// answering), and their CLIs got the stop grace; the TTL has passed since
// that host's last heartbeat.
func (h *Host) takeoverFence() time.Duration {
	return max(max(h.selfFenceAfter(), client.HostLostAfter)+h.stopGrace()+time.Second-h.ttl, 0)
}

// Run registers the host, serves until ctx ends, then stops every agent
// (running turns are interrupted and their messages re-queued at the
// front), releases their leases, tells the other hosts, and removes the
// host's record. It returns nil after a clean stop.
func (h *Host) Run(ctx context.Context) error {
	h.started = time.Now()
	if err := h.checkHostID(ctx); err != nil {
		return err
	}
	// The host id is this process's now: take back the plugins its
	// previous process left running (a restart or upgrade), before any
	// claim opens a session.
	if r, ok := h.opts.Backends.(agentloop.Recoverer); ok {
		if err := r.Recover(ctx); err != nil {
			return fmt.Errorf("reattach to the previous process's plugins: %w", err)
		}
	}
	if err := h.heartbeat(ctx); err != nil {
		return fmt.Errorf("register host %s: %w", h.opts.HostID, err)
	}
	h.log.Info("serving", "host_id", h.opts.HostID, "capacity", h.opts.Capacity, "lease_ttl", h.ttl,
		"labels", h.opts.Labels, "notifications", h.notifications())

	var fleetC <-chan struct{}
	if n := h.opts.Notifier; n != nil && n.Mode() == notify.ModeKeyspace {
		w, err := n.WatchFleet(ctx)
		if err != nil {
			h.log.Warn("watch the wanted agents: claiming at each scan only", "error", err)
		} else {
			defer w.Close()
			fleetC = w.C()
		}
	}

	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	beatDone := make(chan struct{})
	go func() { defer close(beatDone); h.beatLoop(beatCtx) }()

	scan := time.NewTicker(h.beatEvery())
	defer scan.Stop()
	h.scan(ctx)
	scans := 1
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-scan.C:
			h.scan(ctx)
			if scans++; scans == 2 {
				// The host's own agents were claimed back at the first scan
				// and have resumed their sessions by now; the sessions left
				// belong to agents other hosts took meanwhile.
				if c, ok := h.opts.Backends.(interface{ CloseUnadopted(context.Context) }); ok {
					go c.CloseUnadopted(context.WithoutCancel(ctx))
				}
			}
		case <-fleetC:
			h.scan(ctx)
		case <-h.kick:
			h.scan(ctx)
		}
	}
	h.shutdown(context.WithoutCancel(ctx))
	stopBeat()
	<-beatDone
	if h.detaching.Load() {
		// The host id, its liveness key and its agents' leases stay: the
		// successor process (the same host id) takes them over at once, and
		// no other host claims the agents meanwhile.
		h.log.Info("detached: running turns and sessions are left for the next process of this host", "host_id", h.opts.HostID)
		return nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.store.RemoveHost(fctx, h.opts.HostID); err != nil {
		h.log.Warn("remove the host's record", "error", err)
	}
	if err := h.store.WakeFleet(fctx); err != nil {
		h.log.Warn("tell the other hosts", "error", err)
	}
	h.log.Info("stopped", "host_id", h.opts.HostID)
	return nil
}

func (h *Host) notifications() string {
	if h.opts.Notifier == nil {
		return "off (polling)"
	}
	return h.opts.Notifier.Status().String()
}

// checkHostID refuses to run when another live process uses the host id:
// two hosts with one id would each take the other's agents for their own.
func (h *Host) checkHostID(ctx context.Context) error {
	hosts, _, err := h.store.Hosts(ctx)
	if err != nil {
		return err
	}
	for _, r := range hosts {
		if r.ID != h.opts.HostID || !r.Alive {
			continue
		}
		if r.Hostname == h.opts.Hostname && !procinfo.Running(r.PID, "serve") {
			h.log.Info("taking over the host id of a serve process that is gone", "pid", r.PID)
			return nil
		}
		if r.Hostname == h.opts.Hostname && r.PID == os.Getpid() {
			return nil
		}
		return fmt.Errorf("host id %q is in use by pid %d on %s (last heartbeat %s): give this host another --host-id, or stop that one first",
			h.opts.HostID, r.PID, r.Hostname, r.Heartbeat.Format(time.RFC3339))
	}
	return nil
}

func (h *Host) record() town.HostRecord {
	h.mu.Lock()
	load := len(h.agents)
	h.mu.Unlock()
	return town.HostRecord{
		ID: h.opts.HostID, Hostname: h.opts.Hostname, PID: os.Getpid(), Version: h.opts.Version,
		Capacity: h.opts.Capacity, Load: load, Labels: h.opts.Labels, Listen: h.opts.Listen, Started: h.started.UTC(),
		ReattachMillis: int64(h.opts.Config.TTHost.ReattachWindowSecs) * 1000,
	}
}

func (h *Host) beatLoop(ctx context.Context) {
	t := time.NewTicker(h.beatEvery())
	defer t.Stop()
	agents := time.NewTicker(time.Duration(max(h.opts.Config.TTHost.HeartbeatSecs, 1)) * time.Second)
	defer agents.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-agents.C:
			h.agentHeartbeats(ctx)
		case <-h.beatNow:
			if err := h.heartbeat(ctx); err != nil {
				h.log.Warn("heartbeat failed", "error", err)
			}
		case <-t.C:
			if err := h.heartbeat(ctx); err != nil {
				h.log.Warn("heartbeat failed", "error", err)
				h.selfFenceIfDue()
			}
		}
	}
}

// heartbeat renews the host's liveness and record, then checks that every
// agent it serves is still its own: one MGET of their leases.
func (h *Host) heartbeat(ctx context.Context) error {
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, h.beatEvery())
	defer cancel()
	existed, err := h.store.HostBeat(bctx, h.record(), h.ttl)
	if err != nil {
		h.metrics.RedisErrorHost()
		return err
	}
	h.lastBeatOK.Store(start.UnixNano())
	if h.fenced.CompareAndSwap(true, false) {
		h.log.Info("Redis is back: claiming the wanted agents again")
		h.poke()
	}
	if !existed && !h.started.IsZero() && time.Since(h.started) > h.beatEvery() {
		h.log.Warn("the host's liveness key had expired: other hosts may have taken its agents")
	}
	h.checkLeases(bctx)
	return nil
}

// agentHeartbeats writes last_heartbeat of every served agent in one
// command, and touches their log files (tt recover trusts their mtime):
// Tinytown's liveness signal, for agents whose loops wait without a word.
func (h *Host) agentHeartbeats(ctx context.Context) {
	all := h.snapshot()
	if len(all) == 0 {
		return
	}
	ids := make([]string, len(all))
	now := time.Now()
	for i, s := range all {
		ids[i] = s.want.ID
		_ = os.Chtimes(filepath.Join(h.opts.TownDir, ".tt", "logs", s.want.Name+".log"), now, now)
	}
	bctx, cancel := context.WithTimeout(ctx, h.beatEvery())
	defer cancel()
	if err := h.store.HeartbeatAll(bctx, ids); err != nil {
		h.metrics.RedisErrorHost()
		h.log.Warn("agents' heartbeat", "error", err)
	}
}

// checkLeases stops the loops of agents whose lease is no longer this
// host's (taken over while the host could not renew).
func (h *Host) checkLeases(ctx context.Context) {
	h.mu.Lock()
	ids := make([]string, 0, len(h.agents))
	for id := range h.agents {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	owners, err := h.store.LeaseOwners(ctx, ids)
	if err != nil {
		h.metrics.RedisErrorHost()
		return
	}
	for _, id := range ids {
		h.mu.Lock()
		s := h.agents[id]
		h.mu.Unlock()
		if s == nil {
			continue
		}
		// A missing lease is one the loop released as it ended (its own
		// fenced writes find out otherwise); a different token is a
		// takeover.
		if o, ok := owners[id]; ok && o.Token != s.lease.Owner.Token {
			s.lose(fmt.Errorf("the lease is no longer this host's: host %s (pid %d on %s) holds it", o.HostID, o.PID, o.Host), false)
		}
	}
}

// selfFenceIfDue gives every agent up when the host has gone without a
// heartbeat for selfFenceAfter (see there).
func (h *Host) selfFenceIfDue() {
	last := time.Unix(0, h.lastBeatOK.Load())
	if time.Since(last) < h.selfFenceAfter() || !h.fenced.CompareAndSwap(false, true) {
		return
	}
	h.log.Error("no heartbeat reached Redis for too long: stopping every turn and giving the agents up, so another host can take them safely",
		"since", last, "self_fence_after", h.selfFenceAfter())
	h.mu.Lock()
	all := make([]*served, 0, len(h.agents))
	for _, s := range h.agents {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.lose(fmt.Errorf("this host could not reach Redis for %s, longer than its lease allows", time.Since(last).Round(time.Second)), true)
	}
}

// Healthy is nil while the host's heartbeats reach Redis.
func (h *Host) Healthy() error {
	if h.fenced.Load() {
		return errors.New("the host cannot reach Redis: its agents are given up until it can")
	}
	last := h.lastBeatOK.Load()
	if last == 0 {
		return errors.New("the host has not registered yet")
	}
	if d := time.Since(time.Unix(0, last)); d > h.ttl {
		return fmt.Errorf("no heartbeat reached Redis for %s (lease TTL %s)", d.Round(time.Millisecond), h.ttl)
	}
	return nil
}

// Served lists the ids of the agents the host serves now.
func (h *Host) Served() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.agents))
	for id := range h.agents {
		out = append(out, id)
	}
	return out
}

// RedisDown and RedisUp are the host's town.OutageHook callbacks: every
// loop says so in its log.
func (h *Host) RedisDown(err error) {
	h.metrics.RedisErrorHost()
	for _, s := range h.snapshot() {
		s.loop.RedisDown(err)
	}
}

// RedisUp: see RedisDown.
func (h *Host) RedisUp(down time.Duration) {
	for _, s := range h.snapshot() {
		s.loop.RedisUp(down)
	}
}

func (h *Host) snapshot() []*served {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*served, 0, len(h.agents))
	for _, s := range h.agents {
		if s.loop != nil {
			out = append(out, s)
		}
	}
	return out
}

// loadChanged has the heartbeat write the host's record soon, so `tthost
// hosts` shows the new load.
func (h *Host) loadChanged() {
	select {
	case h.beatNow <- struct{}{}:
	default:
	}
}

func (h *Host) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// shutdown stops every loop the way SIGTERM stops an agent-loop and waits
// for them: their turns are interrupted, messages re-queued, leases
// released.
func (h *Host) shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	all := make([]*served, 0, len(h.agents))
	for _, s := range h.agents {
		all = append(all, s)
	}
	h.mu.Unlock()
	detach := h.detaching.Load()
	h.log.Info("stopping", "agents", len(all), "detach", detach)
	var wg sync.WaitGroup
	for _, s := range all {
		if detach {
			s.loop.Detach()
		}
		wg.Go(s.stop)
	}
	wg.Wait()
	h.wg.Wait()
}

// Detach makes Run end without interrupting anything, for a successor
// process of this host (an upgrade or restart that reattaches to the
// host's plugins): every loop detaches (its turn runs on in its plugin),
// no lease is released, and the host's record and liveness key stay for
// the successor, which has the same host id. Cancel Run's context after
// it, then detach the backends (backend.Manager.Detach).
func (h *Host) Detach() { h.detaching.Store(true) }

type nopMetrics struct{}

func (nopMetrics) TurnEnded(agentloop.TurnReport)              {}
func (nopMetrics) Steered(agentloop.AgentRef, time.Duration)   {}
func (nopMetrics) QueueDepth(agentloop.AgentRef, int64, int64) {}
func (nopMetrics) RedisError(agentloop.AgentRef)               {}
func (nopMetrics) SetAgentsServed(int)                         {}
func (nopMetrics) LeaseTakeover()                              {}
func (nopMetrics) RedisErrorHost()                             {}
func (nopMetrics) Forget(agentloop.AgentRef)                   {}
