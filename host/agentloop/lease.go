package agentloop

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/procinfo"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/client"
)

// acquireLease makes this process the agent's only worker. A holder on
// this host whose process is gone (kill -9, a crash) is taken over at once;
// a live one is refused with an error naming it.
func (l *Loop) acquireLease(ctx context.Context) error {
	host, _ := os.Hostname()
	ttl := leaseTTL(l.cfg)
	owner := town.LeaseOwner{PID: os.Getpid(), Host: host, ReattachMillis: int64(l.cfg.TTHost.ReattachWindowSecs) * 1000}
	lease, err := l.store.AcquireLease(ctx, l.id, owner, ttl, func(o town.LeaseOwner) bool {
		if o.HostID != "" {
			// A serve host's lease lives as long as the host does.
			alive, err := l.store.HostsAlive(ctx, []string{o.HostID})
			return err == nil && !alive[o.HostID]
		}
		// This very process held it before it re-executed itself (a
		// restart that keeps the pid, see Detach), or a worker here died.
		return o.Host == host && (o.PID == os.Getpid() || !workerAlive(o.PID, l.id))
	})
	if err != nil {
		return fmt.Errorf("agent %s (%s): %w", l.name, l.id, err)
	}
	l.lease = lease
	l.worker = lease.Worker()
	return nil
}

// workerAlive reports whether pid is a live agent-loop for the agent.
func workerAlive(pid int, agentID string) bool {
	return procinfo.Running(pid, "agent-loop", agentID)
}

// deadHolderFence is how long a worker waits before re-delivering what a
// dead worker on this host left in flight: that worker's plugins get its
// parent-death signal at once and stop their CLIs' process groups
// (SIGTERM, then SIGKILL after the stop grace).
const deadHolderFence = time.Second

// fenceWait is how long to wait before delivering the in-flight messages
// of the previous worker again, so that its turn has surely ended: no two
// runs of one message overlap. A holder that released the lease left
// nothing running. A dead one on this host is waited for briefly. One that
// may be alive (its lease expired: another host, or a frozen process) had
// its turns cancelled by its plugins client.HostLostAfter after it stopped
// answering, at most one heartbeat after its last refresh, and its CLI
// gets the stop grace; the lease's TTL has already passed since that
// refresh.
func (l *Loop) fenceWait() (time.Duration, string) {
	if c := l.opts.Claim; c != nil {
		return c.Fence, c.FenceWhy
	}
	prev := l.lease.Previous
	if prev == nil {
		return 0, ""
	}
	host, _ := os.Hostname()
	if l.lease.TookOver || (prev.Host == host && !workerAlive(prev.PID, l.id)) {
		if prev.ReattachMillis > 0 && !l.previousPluginsKnown() {
			// Its plugins outlive it for its reattach window, and it left no
			// record of them (the reattach file is gone): one may still be
			// running the turn.
			grace := time.Duration(l.cfg.TTHost.StopGraceSecs) * time.Second
			return time.Duration(prev.ReattachMillis)*time.Millisecond + grace + time.Second,
				fmt.Sprintf("the previous worker (pid %d) died without a reattach file, and its plugins may run its turn for its reattach window", prev.PID)
		}
		return deadHolderFence, fmt.Sprintf("the previous worker (pid %d) died", prev.PID)
	}
	fence := ExpiredLeaseFence(l.cfg)
	if prev.ReattachMillis > 0 {
		// Its plugins keep a turn running for the reattach window after it
		// is gone (about one lease TTL ago), then the CLI gets the grace.
		grace := time.Duration(l.cfg.TTHost.StopGraceSecs) * time.Second
		fence = max(fence, time.Duration(prev.ReattachMillis)*time.Millisecond+grace+time.Second-leaseTTL(l.cfg))
	}
	return fence, fmt.Sprintf("the previous worker (pid %d on %s) let its lease expire and may still be running their turn", prev.PID, prev.Host)
}

// ExpiredLeaseFence is how long a successor waits before delivering again
// what an agent-loop whose lease expired left in flight: its plugins
// cancelled its turns client.HostLostAfter after it stopped answering, at
// most one heartbeat after its last refresh, and its CLI got the stop
// grace; the lease's TTL (3 × heartbeat) has passed since that refresh.
func ExpiredLeaseFence(cfg *config.Config) time.Duration {
	hb := time.Duration(cfg.TTHost.HeartbeatSecs) * time.Second
	grace := time.Duration(cfg.TTHost.StopGraceSecs) * time.Second
	return max(hb+client.HostLostAfter+grace+time.Second-leaseTTL(cfg), 0)
}

// leaseTTL is an agent-loop's lease TTL: 3 × heartbeat.
func leaseTTL(cfg *config.Config) time.Duration {
	return 3 * time.Duration(cfg.TTHost.HeartbeatSecs) * time.Second
}

// awaitFence waits fenceWait before n in-flight messages are delivered
// again.
func (l *Loop) awaitFence(ctx context.Context, n int) error {
	d, why := l.fenceWait()
	if d <= 0 {
		return nil
	}
	l.say("⏳ %s: waiting %s for its plugins to end that turn before delivering %d message(s) again", why, d.Round(time.Millisecond), n)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
