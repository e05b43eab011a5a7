package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/tthost/tthost/host/agentloop"
	"github.com/tthost/tthost/host/town"
)

// scan claims wanted agents up to the host's capacity and fair share, and
// lets go of agents that are no longer wanted. It runs at start, every
// heartbeat interval, when the wanted agents change (a keyspace event),
// when another host released agents, and when one of this host's loops
// ended. A scan of a town in a steady state costs four commands: the
// wanted hash, the host records, the leases of the agents this host does
// not serve (one MGET), and the hosts' records with their liveness.
func (h *Host) scan(ctx context.Context) {
	if h.fenced.Load() || ctx.Err() != nil {
		return
	}
	wanted, bad, err := h.store.WantedAgents(ctx)
	if err != nil {
		h.metrics.RedisErrorHost()
		h.log.Warn("read the wanted agents", "error", err)
		return
	}
	for _, e := range bad {
		if !h.badSeen[e.Error()] {
			h.badSeen[e.Error()] = true
			h.log.Warn("a wanted-agent record is unusable; it is left alone", "error", e)
		}
	}
	hosts, _, err := h.store.Hosts(ctx)
	if err != nil {
		h.metrics.RedisErrorHost()
		h.log.Warn("read the hosts", "error", err)
		return
	}
	live := 0
	seen := make(hostsSeen, len(hosts)) // every host writes its record with its liveness key
	for _, r := range hosts {
		seen[r.ID] = r
		if r.Alive {
			live++
		}
		if !r.Alive && r.ID != h.opts.HostID && time.Since(r.Heartbeat) > forgetHostAfter {
			_ = h.store.ForgetHost(ctx, r.ID)
		}
	}
	live = max(live, 1)

	// Agents served here that are no longer wanted: a `tthost stop` also
	// sets their stop flag, so their loops are ending already; any other
	// release (an operator's HDEL) ends them here.
	h.mu.Lock()
	for id, s := range h.agents {
		if _, ok := wanted[id]; !ok && !s.released.Load() {
			h.log.Info("agent no longer wanted: stopping its loop", "agent", s.want.Name)
			go s.stop()
		}
	}
	var others []string
	now := time.Now()
	for id, w := range wanted {
		if _, mine := h.agents[id]; mine || now.Before(h.retryAt[id]) {
			continue
		}
		if !town.LabelsMatch(h.opts.Labels, h.agentLabels(w)) {
			continue
		}
		others = append(others, id)
	}
	load := len(h.agents)
	h.mu.Unlock()
	if len(others) == 0 {
		return
	}

	owners, err := h.store.LeaseOwners(ctx, others)
	if err != nil {
		h.metrics.RedisErrorHost()
		h.log.Warn("read the agents' leases", "error", err)
		return
	}
	// Free agents: no lease, or a lease whose host is gone (or is this
	// host's, left by a loop that ended or an earlier process with this
	// id). A lease without a host is an agent-loop's, alive while its key
	// exists.
	var waited, fresh []string
	unclaimed := map[string]bool{}
	for _, id := range others {
		o, held := owners[id]
		free := !held || (o.HostID == h.opts.HostID) || (o.HostID != "" && !seen[o.HostID].Alive)
		if !free {
			continue
		}
		unclaimed[id] = true
		if h.unclaimed[id] {
			waited = append(waited, id)
		} else {
			fresh = append(fresh, id)
		}
	}
	h.unclaimed = unclaimed
	rand.Shuffle(len(waited), func(i, j int) { waited[i], waited[j] = waited[j], waited[i] })
	rand.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })

	// A fair share of the wanted agents first; agents that stayed
	// unclaimed through a whole scan interval are taken beyond it (another
	// host may be full, or labelled for other CLIs). Capacity always holds.
	room := h.opts.Capacity - load
	share := max((len(wanted)+live-1)/live-load, 0)
	for _, id := range waited {
		if room <= 0 {
			break
		}
		if h.claim(ctx, wanted[id], seen) {
			room--
			share--
		}
	}
	for _, id := range fresh {
		if room <= 0 || share <= 0 {
			break
		}
		if h.claim(ctx, wanted[id], seen) {
			room--
			share--
		}
	}
}

// forgetHostAfter is how long a dead host's record stays listed by
// `tthost hosts` before a live host removes it.
const forgetHostAfter = time.Hour

// agentLabels are what host labels are matched against: the agent's CLI.
func (h *Host) agentLabels(w town.WantedAgent) map[string]string {
	cli := w.CLI
	if cli == "" {
		cli = h.opts.Config.DefaultCLI
	}
	return map[string]string{"cli": h.opts.Config.ResolveCLIName(cli)}
}

// claim takes the agent's lease and starts its loop; false when another
// host was quicker or the lease could not be taken.
func (h *Host) claim(ctx context.Context, w town.WantedAgent, seen hostsSeen) bool {
	owner := town.LeaseOwner{PID: pid, Host: h.opts.Hostname, HostID: h.opts.HostID}
	lease, err := h.store.AcquireLease(ctx, w.ID, owner, 0, func(o town.LeaseOwner) bool {
		if o.HostID == h.opts.HostID {
			return !h.serving(w.ID)
		}
		return o.HostID != "" && !seen[o.HostID].Alive
	})
	if errors.Is(err, town.ErrLeaseHeld) {
		return false
	}
	if err != nil {
		h.metrics.RedisErrorHost()
		h.log.Warn("claim agent", "agent", w.Name, "error", err)
		return false
	}
	fence, why := h.fenceFor(lease, seen)
	if lease.TookOver && lease.Previous != nil && lease.Previous.HostID != h.opts.HostID {
		h.metrics.LeaseTakeover()
	}
	h.log.Info("claimed agent", "agent", w.Name, "id", w.ID, "took_over", lease.TookOver)
	if !h.start(ctx, w, lease, fence, why) {
		_ = lease.Release(context.WithoutCancel(ctx))
		return false
	}
	return true
}

// fenceFor is how long the loop waits before delivering again what the
// lease's previous holder left in flight, and why.
func (h *Host) fenceFor(l *town.Lease, seen hostsSeen) (time.Duration, string) {
	prev := l.Previous
	if prev == nil {
		return 0, ""
	}
	switch {
	case prev.HostID == h.opts.HostID:
		// This host's own earlier loop (it ended, so its session is
		// closed) or an earlier process with this id that is gone: its
		// plugins got its parent-death signal, or this process reattached
		// to them (Recover), unless it left no reattach file.
		if k, ok := h.opts.Backends.(interface{ PreviousPluginsKnown() bool }); ok && !k.PreviousPluginsKnown() &&
			prev.PID != os.Getpid() && h.opts.Config.TTHost.ReattachWindowSecs > 0 {
			return time.Duration(h.opts.Config.TTHost.ReattachWindowSecs)*time.Second + h.stopGrace() + time.Second,
				fmt.Sprintf("the previous process of this host id (pid %d) left no reattach file, and its plugins may run its turn for their reattach window", prev.PID)
		}
		return time.Second, fmt.Sprintf("the previous worker of this host id (pid %d) ended", prev.PID)
	case prev.HostID != "":
		fence := max(h.takeoverFence(), h.reattachFence(seen[prev.HostID]))
		return fence, fmt.Sprintf("host %s (pid %d on %s) stopped renewing its lease and may still be ending their turn", prev.HostID, prev.PID, prev.Host)
	default:
		// An agent-loop's lease (TTL 3 × heartbeat) expired: as its
		// successor agent-loop would wait.
		return agentloop.ExpiredLeaseFence(h.opts.Config), fmt.Sprintf("the previous worker (pid %d on %s) let its lease expire and may still be running their turn", prev.PID, prev.Host)
	}
}

func (h *Host) serving(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.agents[id]
	return ok
}

// hostsSeen are the town's host records as the claim scan read them, by
// id (a missing id reads as a gone host without a record).
type hostsSeen map[string]town.HostStatus

// reattachFence is how long after taking over a lease from the gone host
// its plugins may still run its turns: they keep them for the host's
// reattach window (from its record) after it stopped, which was about one
// lease TTL ago, and the CLI then gets the stop grace.
func (h *Host) reattachFence(gone town.HostStatus) time.Duration {
	if gone.ReattachMillis <= 0 {
		return 0
	}
	return max(time.Duration(gone.ReattachMillis)*time.Millisecond+h.stopGrace()+time.Second-h.ttl, 0)
}
