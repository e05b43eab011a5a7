package agentloop

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tthost/tthost/host/town"
)

// acquireLease makes this process the agent's only worker. A holder on
// this host whose process is gone (kill -9, a crash) is taken over at once;
// a live one is refused with an error naming it.
func (l *Loop) acquireLease(ctx context.Context) error {
	host, _ := os.Hostname()
	ttl := 3 * time.Duration(l.cfg.TTHost.HeartbeatSecs) * time.Second
	lease, err := l.store.AcquireLease(ctx, l.id, town.LeaseOwner{PID: os.Getpid(), Host: host}, ttl, func(o town.LeaseOwner) bool {
		return o.Host == host && !workerAlive(o.PID, l.id)
	})
	if err != nil {
		return fmt.Errorf("agent %s (%s): %w", l.name, l.id, err)
	}
	l.lease = lease
	return nil
}

// workerAlive reports whether pid is a live agent-loop for the agent (a
// reused pid running something else does not count).
func workerAlive(pid int, agentID string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return true // cannot tell: assume alive, the lease's TTL decides
	}
	cmd := string(b)
	return strings.Contains(cmd, "agent-loop") && strings.Contains(cmd, agentID)
}
