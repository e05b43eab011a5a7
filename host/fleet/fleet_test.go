package fleet

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/host/agentloop"
	"github.com/tthost/tthost/host/backend"
	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// backends adapts the manager to the loop (as the CLI does).
type backends struct{ m *backend.Manager }

func (b backends) Select(ctx context.Context, w backend.Want) (backend.Choice, error) {
	return b.m.Select(ctx, w)
}

func (b backends) OpenSession(ctx context.Context, ch backend.Choice, cfg sdk.SessionConfig) (agentloop.Session, error) {
	return b.m.Open(ctx, ch, cfg)
}

// waitFor re-checks cond on every change of changed until it holds,
// failing the test after timeout.
func waitFor(t *testing.T, changed <-chan struct{}, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !testenv.WaitFor(changed, timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// A host cut off from Redis for longer than its lease allows stops its
// turn (the CLI's process group is gone before the host's liveness key can
// expire) and gives the agent up; when Redis is back it claims the agent
// again and delivers the message once more, which then completes once.
func TestHostCutOffFromRedisStopsItsTurnsAndServesAgainAfter(t *testing.T) {
	bin := testenv.Binaries(t)
	r := testenv.StartRedisWith(t, testenv.RedisOptions{AppendOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	cfg := config.New("fleet")
	// Plugins stop with a killed tthost here, so a test's kill leaves
	// nothing behind; the reattach tests set a window of their own.
	cfg.TTHost.ReattachWindowSecs = 0
	cfg.Agent.IdleTimeoutSecs = 0
	cfg.TTHost.StopGraceSecs = 1
	cfg.TTHost.HeartbeatSecs = 3600
	cfg.TTHost.RedisOutageSecs = 1
	// The first run of the turn records its pid and hangs; the second
	// one (after the host served the agent again) completes at once.
	script := filepath.Join(dir, "cli.sh")
	runs := filepath.Join(dir, "runs")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
echo "$$" >> `+runs+`
n=$(wc -l < `+runs+`)
if [ "$n" -eq 1 ]; then exec sleep 300; fi
echo done
`), 0o755); err != nil {
		t.Fatal(err)
	}
	store := town.New(r.Client, cfg.Name)
	// What the test waits for: the CLI's runs file and the agent's record.
	// The host turns keyspace events on again after Redis restarts.
	testenv.EnableKeyspaceEvents(t, r.Client)
	changed := testenv.Merge(t, testenv.WatchKeyspace(t, r.Client, store.Keys().Prefix()), testenv.WatchDir(t, dir))
	a, err := store.CreateAgent(ctx, town.AgentSpec{Name: "worker", CLI: "sh " + script})
	if err != nil {
		t.Fatal(err)
	}

	mgr, err := backend.New(backend.Options{Dirs: []string{bin}, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mgr.Close() })
	n, err := notify.New(ctx, r.Client, store.Keys(), notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	h, err := New(Options{
		TownDir: dir, Config: cfg, Store: store, Backends: backends{mgr}, Notifier: n,
		HostID: "h1", Capacity: 5, LeaseTTL: 2 * time.Second, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})

	if err := store.Want(ctx, town.WantedAgent{ID: a.ID, Name: a.Name, CLI: "sh " + script, MaxRounds: 10}); err != nil {
		t.Fatal(err)
	}
	if err := store.Send(ctx, town.NewTask(town.SupervisorID, a.ID, "do it")); err != nil {
		t.Fatal(err)
	}
	var firstPID int
	waitFor(t, changed, "the first run of the turn", 30*time.Second, func() bool {
		b, _ := os.ReadFile(runs)
		firstPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return firstPID > 0
	})

	r.Kill9()
	// Self-fencing: the turn's CLI is stopped while Redis is away.
	if !testenv.WaitExit(firstPID, 30*time.Second) {
		t.Fatalf("the CLI of the running turn (pid %d) still runs with Redis gone past the host's lease", firstPID)
	}
	if err := h.Healthy(); err == nil {
		t.Fatal("Healthy() = nil while the host cannot reach Redis")
	}

	r.Restart()
	waitFor(t, changed, "the turn to complete once after Redis came back", 60*time.Second, func() bool {
		ag, err := store.GetAgent(ctx, a.ID)
		return err == nil && ag.RoundsCompleted == 1
	})
	b, _ := os.ReadFile(runs)
	if got := len(strings.Fields(string(b))); got != 2 {
		t.Fatalf("the CLI ran %d times, want 2 (the interrupted run and the one that completed)", got)
	}
	if left, _ := store.InFlight(ctx, a.ID); len(left) != 0 {
		t.Fatalf("in flight after the completed turn: %v", left)
	}
	if err := h.Healthy(); err != nil {
		t.Fatalf("Healthy() after Redis came back: %v", err)
	}
	if served := h.Served(); len(served) != 1 || served[0] != a.ID {
		t.Fatalf("served = %v, want the agent", served)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run after a clean stop: %v", err)
	}
	done <- nil // for the cleanup
	if hosts, _, _ := store.Hosts(ctx); len(hosts) != 0 {
		t.Fatalf("hosts after a clean stop = %+v, want none", hosts)
	}
	if o, _ := store.LeaseHolder(ctx, a.ID); o != nil {
		t.Fatalf("the lease is still held after a clean stop: %+v", o)
	}
	if w, _ := store.IsWanted(ctx, a.ID); !w {
		t.Fatal("a clean host stop released the agent from the wanted set: another host would not take it")
	}
}
