package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

// serveTown is a town whose agents are served by real `tthost serve`
// processes (issue 10). Every agent runs the one-shot CLI "bench", which
// writes a line to a FIFO first thing; started receives the time each line
// arrived.
type serveTown struct {
	b       *testing.B
	procs   *sdktest.Processes
	redis   *testenv.RedisServer
	store   *town.Store
	bin     string
	root    string
	started chan time.Time
	agents  []*town.Agent
}

const serveMaxRounds = 1000000

func startServeTown(b *testing.B, configure func(*config.Config)) *serveTown {
	dir := testenv.Binaries(b)
	procs := sdktest.TrackProcesses(b)
	r := testenv.StartRedisWith(b, testenv.RedisOptions{Unix: true, Env: []string{procs.Env()}})
	root, err := os.MkdirTemp("", "ttserve")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(root) })
	fifo := filepath.Join(root, "started.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := config.New("bench")
	// Plugins stop with a killed tthost here, so a test's kill leaves
	// nothing behind; the reattach tests set a window of their own.
	cfg.TTHost.ReattachWindowSecs = 0
	cfg.AgentCLIs["bench"] = config.AgentCLI{Name: "bench", Command: "echo started > " + fifo + "; cat >/dev/null"}
	cfg.Agent.IdleTimeoutSecs = 0
	if configure != nil {
		configure(cfg)
	}
	if err := cfg.Save(filepath.Join(root, config.FileName)); err != nil {
		b.Fatal(err)
	}
	// O_RDWR: the FIFO never sees EOF between CLIs.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	// The benchmark's waits follow the town's keys (its hosts would turn
	// the events on too, as they start).
	testenv.EnableKeyspaceEvents(b, r.Client)
	t := &serveTown{b: b, procs: procs, redis: r, store: town.New(r.Client, cfg.Name), bin: dir, root: root,
		started: make(chan time.Time, 4096)}
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			t.started <- time.Now()
		}
	}()
	return t
}

// hostProc is a running `tthost serve`.
type hostProc struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{}
	out  *testenv.Buffer
}

// startHost starts `tthost serve` and waits for its "serving" line. It is
// stopped with SIGTERM (SIGKILL of its process group after 20 s) when the
// benchmark ends.
func (t *serveTown) startHost(id string, capacity int, ttl time.Duration) *hostProc {
	b := t.b
	cmd := exec.Command(filepath.Join(t.bin, "tthost"), "--town", t.root, "serve", "--host-id", id,
		"--capacity", strconv.Itoa(capacity), "--lease-ttl", ttl.String())
	cmd.Env = append(t.procs.Environ(), "REDIS_URL="+t.redis.URL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	h := &hostProc{id: id, cmd: cmd, done: make(chan struct{}), out: &testenv.Buffer{}}
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(h.done) }()
	b.Cleanup(func() {
		select {
		case <-h.done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
		}
		if b.Failed() {
			b.Logf("host %s log:\n%s", id, h.out.String())
		}
	})
	if !h.out.WaitAfter(0, "serving", 30*time.Second) {
		b.Fatalf("host %s did not start:\n%s", id, h.out.String())
	}
	return h
}

// kill9 kills the host's process group (host and plugins), as a machine
// failure would.
func (h *hostProc) kill9() {
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	<-h.done
}

// newAgent registers an agent as `tthost spawn` does with a live host: the
// record, then the wanted hash (whose notification wakes the hosts).
func (t *serveTown) newAgent(ctx context.Context, name string) *town.Agent {
	a := t.createAgent(ctx, name)
	t.want(ctx, a)
	return a
}

func (t *serveTown) createAgent(ctx context.Context, name string) *town.Agent {
	a, err := t.store.CreateAgent(ctx, town.AgentSpec{Name: name, CLI: "bench"})
	if err != nil {
		t.b.Fatal(err)
	}
	t.agents = append(t.agents, a)
	return a
}

func (t *serveTown) want(ctx context.Context, a *town.Agent) {
	if err := t.store.Want(ctx, town.WantedAgent{ID: a.ID, Name: a.Name, CLI: "bench", MaxRounds: serveMaxRounds, By: "spawn"}); err != nil {
		t.b.Fatal(err)
	}
}

// waitServedBy waits until every agent's lease names hostID, re-reading
// the leases (one MGET) after every write to a lease key.
func (t *serveTown) waitServedBy(ctx context.Context, agents []*town.Agent, hostID string, timeout time.Duration) time.Time {
	t.b.Helper()
	at, err := t.servedBy(ctx, agents, hostID, timeout)
	if err != nil {
		t.b.Fatal(err)
	}
	return at
}

// servedBy is waitServedBy for any goroutine: it returns the error. The
// time returned is when the last lease write was seen.
func (t *serveTown) servedBy(ctx context.Context, agents []*town.Agent, hostID string, timeout time.Duration) (time.Time, error) {
	ids := make([]string, len(agents))
	for i, a := range agents {
		ids[i] = a.ID
	}
	changed, stop, err := testenv.SubscribeKeyspace(ctx, t.redis.Client, t.store.Keys().Prefix()+"tthost:lease:")
	if err != nil {
		return time.Time{}, err
	}
	defer stop()
	var at time.Time
	var n int
	var lastErr error
	ok := testenv.WaitFor(changed, timeout, func() bool {
		owners, err := t.store.LeaseOwners(ctx, ids)
		at, n, lastErr = time.Now(), 0, err
		for _, id := range ids {
			if o, ok := owners[id]; ok && o.HostID == hostID {
				n++
			}
		}
		return err == nil && n == len(ids)
	})
	if !ok {
		return at, fmt.Errorf("%d of %d agents served by %s after %s (last error %v)", n, len(ids), hostID, timeout, lastErr)
	}
	return at, nil
}

// send puts a task in the agent's inbox (with tthost's wake signal).
func (t *serveTown) send(ctx context.Context, a *town.Agent) {
	if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, a.ID, "wake up")); err != nil {
		t.b.Fatal(err)
	}
}

// nextStart waits for a CLI's line on the FIFO.
func (t *serveTown) nextStart() time.Time {
	t.b.Helper()
	select {
	case at := <-t.started:
		return at
	case <-time.After(60 * time.Second):
		t.b.Fatal("no CLI started within 60s")
	}
	return time.Time{}
}

// lastEvent is the id of the agent's newest event ("0" when none).
func (t *serveTown) lastEvent(ctx context.Context, a *town.Agent) string {
	xs, err := t.redis.Client.XRevRangeN(ctx, t.store.Keys().EventsAgent(a.ID), "+", "-", 1).Result()
	if err != nil || len(xs) == 0 {
		return "0"
	}
	return xs[0].ID
}

// waitTurnCompleted follows the agent's events after the id after until
// its turn completes.
func (t *serveTown) waitTurnCompleted(ctx context.Context, a *town.Agent, after string) {
	t.b.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	stop := errors.New("found")
	err := t.store.FollowEvents(ctx, t.store.Keys().EventsAgent(a.ID), after, func(en town.EventEntry) error {
		if en.Event != nil && en.Event.Type == town.EventAgentTurnCompleted {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.b.Fatalf("%s: no turn completion: %v", a.Name, err)
	}
}

// warm gives every agent one turn (the first opens its session, and the
// first of all launches the plugin) and waits for all of them to complete.
func (t *serveTown) warm(ctx context.Context, agents []*town.Agent) {
	t.b.Helper()
	after := make([]string, len(agents))
	for i, a := range agents {
		after[i] = t.lastEvent(ctx, a)
		t.send(ctx, a)
	}
	for range agents {
		t.nextStart()
	}
	for i, a := range agents {
		t.waitTurnCompleted(ctx, a, after[i])
	}
	t.waitIdle(ctx, agents)
}

// waitIdle waits until every agent's state is idle.
func (t *serveTown) waitIdle(ctx context.Context, agents []*town.Agent) {
	t.b.Helper()
	t.waitState(ctx, agents, town.StateIdle)
}

// waitState waits until every agent is in state, re-reading their states
// after every write to an agent record.
func (t *serveTown) waitState(ctx context.Context, agents []*town.Agent, state town.AgentState) {
	t.b.Helper()
	changed, stop, err := testenv.SubscribeKeyspace(ctx, t.redis.Client, t.store.Keys().Prefix()+"agent:")
	if err != nil {
		t.b.Fatal(err)
	}
	defer stop()
	next := 0 // agents before it were in state at an earlier check, and stay so
	if !testenv.WaitFor(changed, 60*time.Second, func() bool {
		for ; next < len(agents); next++ {
			got, err := t.store.GetAgent(ctx, agents[next].ID)
			if err != nil || got.State != state {
				return false
			}
		}
		return true
	}) {
		t.b.Fatalf("%s did not become %s", agents[next].Name, state)
	}
}

// serveWithAgents starts one host and n agents it serves, each after one
// turn, idle.
func serveWithAgents(b *testing.B, n int) (*serveTown, *hostProc) {
	t := startServeTown(b, nil)
	ctx := context.Background()
	h := t.startHost("bench-a", n+50, 15*time.Second)
	for i := range n {
		t.newAgent(ctx, fmt.Sprintf("idle%d", i+1))
	}
	t.waitServedBy(ctx, t.agents, h.id, 60*time.Second)
	t.warm(ctx, t.agents)
	return t, h
}

// procRSS is VmRSS of one process in kB (0 when it is gone).
func procRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// children lists the direct children of pid from /proc/PID/task/*/children.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, p := range tasks {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// treeRSS is the VmRSS of pid and all its descendants in MB, and how many
// processes that is.
func treeRSS(pid int) (float64, int) {
	var kb int64
	n := 0
	var walk func(int)
	walk = func(p int) {
		kb += procRSS(p)
		n++
		for _, c := range children(p) {
			walk(c)
		}
	}
	walk(pid)
	return float64(kb) / 1024, n
}

// BenchmarkServeIdleRSS: VmRSS of one `tthost serve` process and its
// plugin processes serving 200 idle agents (each after one turn, so its
// session is open in the shared one-shot plugin), per agent (goal ≤ 2 MB),
// beside 10 agents each run by its own `tthost agent-loop` (host + its
// plugin, after one turn too) in the same run.
func BenchmarkServeIdleRSS(b *testing.B) {
	const n = 200
	t, h := serveWithAgents(b, n)
	serveMB, serveProcs := treeRSS(h.cmd.Process.Pid)
	hostMB := float64(procRSS(h.cmd.Process.Pid)) / 1024

	// The same town, 10 more agents run without a host: agent-loop each.
	ctx := context.Background()
	const loops = 10
	var loopAgents []*town.Agent
	var pids []int
	for i := range loops {
		a := t.createAgent(ctx, fmt.Sprintf("loop%d", i+1))
		loopAgents = append(loopAgents, a)
		pids = append(pids, t.startAgentLoop(a))
	}
	t.warm(ctx, loopAgents)
	var loopMB float64
	loopProcs := 0
	for _, pid := range pids {
		mb, np := treeRSS(pid)
		loopMB += mb
		loopProcs += np
	}
	for b.Loop() {
	}
	b.Logf("serve: %d processes, %.1f MB (serve process %.1f MB) for %d agents; agent-loop: %d processes, %.1f MB for %d agents",
		serveProcs, serveMB, hostMB, n, loopProcs, loopMB, loops)
	b.ReportMetric(serveMB, "serve-MB")
	b.ReportMetric(serveMB/n, "serve-MB/agent")
	b.ReportMetric(loopMB/loops, "agentloop-MB/agent")
	b.ReportMetric((loopMB/loops)/(serveMB/n), "ratio")
}

// startAgentLoop runs a's worker as its own `tthost agent-loop` process
// (what `tthost spawn` starts when no host is alive) and returns its pid.
func (t *serveTown) startAgentLoop(a *town.Agent) int {
	b := t.b
	cmd := exec.Command(filepath.Join(t.bin, "tthost"), "--town", t.root, "agent-loop", a.Name, a.ID, strconv.Itoa(serveMaxRounds))
	cmd.Env = append(t.procs.Environ(), "REDIS_URL="+t.redis.URL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		_ = t.store.RequestStop(context.Background(), a.ID)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if b.Failed() {
			b.Logf("%s log:\n%s", a.Name, out.String())
		}
	})
	return cmd.Process.Pid
}

// BenchmarkServeIdleRedisCommands: Redis commands per second for 200 idle
// agents on one host (goal ≤ 20 /s for the whole host), from INFO stats
// total_commands_processed (script-internal commands included) over a
// 60 s window: one full heartbeat_secs period (default 60 s), so every
// agent's heartbeat falls in it once.
func BenchmarkServeIdleRedisCommands(b *testing.B) {
	const n = 200
	t, h := serveWithAgents(b, n)
	ctx := context.Background()
	// The window is 12 of the host's heartbeats (every TTL/3 = 5 s: 60 s),
	// from right after one to right after the 12th, so it holds whole
	// heartbeat periods.
	const beats = 12
	var before, after int64
	var beforeBy, afterBy map[string]int64
	var start time.Time
	var took time.Duration
	overHeartbeats(b, t.redis.Client, t.store.Keys().HostAlive(h.id), beats, 2*time.Minute, func() {
		_, beforeBy = commandCounts(b, ctx, t.redis.Client)
		before = totalCommands(b, t, ctx)
		start = time.Now()
	}, func() {
		after = totalCommands(b, t, ctx)
		took = time.Since(start)
		_, afterBy = commandCounts(b, ctx, t.redis.Client)
	})
	for name, c := range afterBy {
		if d := c - beforeBy[name]; d > 0 {
			b.Logf("%s: %d in %s", name, d, took.Round(time.Millisecond))
		}
	}
	// -1: the first INFO stats itself is counted in the second.
	perSec := float64(after-before-1) / took.Seconds()
	for b.Loop() {
	}
	b.ReportMetric(perSec, "redis-cmds/s")
	b.ReportMetric(perSec/n, "redis-cmds/s/agent")
}

func totalCommands(b *testing.B, t *serveTown, ctx context.Context) int64 {
	info, err := t.redis.Client.Info(ctx, "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no total_commands_processed in INFO stats")
	return 0
}

// overHeartbeats runs start right after the next write of key (a worker's
// periodic heartbeat, seen as its keyspace "set" event) and end right after
// the periods-th write after that one, so that what is measured between
// them spans whole heartbeat periods. It fails after timeout.
func overHeartbeats(b *testing.B, rdb *redis.Client, key string, periods int, timeout time.Duration, start, end func()) {
	b.Helper()
	testenv.EnableKeyspaceEvents(b, rdb)
	ctx := context.Background()
	ps := rdb.PSubscribe(ctx, "__keyspace@*__:"+key)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatalf("subscribe to the heartbeats of %s: %v", key, err)
	}
	msgs := ps.Channel()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for n := -1; n < periods; {
		select {
		case m := <-msgs:
			if m.Payload != "set" {
				continue
			}
			if n++; n == 0 {
				start()
			}
		case <-deadline.C:
			b.Fatalf("%d of the %d heartbeats of %s within %s", max(n, 0), periods, key, timeout)
		}
	}
	end()
}

// BenchmarkServeWakeLatency: with 200 idle agents on one host, a message
// sent (Store.Send, with the wake signal) to one of them → its CLI started
// (its first command writes to a FIFO). Each iteration picks the next agent
// 37 places on, so the sends spread over all of them.
func BenchmarkServeWakeLatency(b *testing.B) {
	const n = 200
	t, _ := serveWithAgents(b, n)
	ctx := context.Background()
	var s samples
	i := 0
	for b.Loop() {
		a := t.agents[i%n]
		i += 37
		after := t.lastEvent(ctx, a)
		sent := time.Now()
		t.send(ctx, a)
		s = append(s, t.nextStart().Sub(sent))
		t.waitTurnCompleted(ctx, a, after)
	}
	s.report(b, "")
}

// BenchmarkServeSpawnFirstTurn: on a warm host (running, its plugin
// launched, 20 agents served), a new agent → its first turn started (its
// CLI's FIFO line). host-: the agent record and a message in its inbox are
// written first, then the clock starts at the Want (the HSET `tthost spawn`
// ends with), so this is the host's part: notification, claim, lease, loop
// start, session open in the shared plugin, intake, CLI start.
// spawn-cmd-: the wall time of a whole `tthost spawn NAME --cli bench`
// process (start, config, Redis connection, record, Want, host check), in
// the same iterations; its agent's first message is then sent and its turn
// awaited, so iterations do not overlap.
func BenchmarkServeSpawnFirstTurn(b *testing.B) {
	t, h := serveWithAgents(b, 20)
	ctx := context.Background()
	var host, cmd samples
	i := 0
	for b.Loop() {
		i++
		a := t.createAgent(ctx, fmt.Sprintf("new%d", i))
		t.send(ctx, a)
		start := time.Now()
		t.want(ctx, a)
		host = append(host, t.nextStart().Sub(start))
		t.waitTurnCompleted(ctx, a, "0")

		name := fmt.Sprintf("spawned%d", i)
		c := exec.Command(filepath.Join(t.bin, "tthost"), "--town", t.root, "spawn", name, "--cli", "bench",
			"--max-rounds", strconv.Itoa(serveMaxRounds), "--json")
		c.Env = append(t.procs.Environ(), "REDIS_URL="+t.redis.URL)
		start = time.Now()
		out, err := c.Output()
		cmd = append(cmd, time.Since(start))
		if err != nil {
			b.Fatalf("spawn: %v: %s", err, out)
		}
		if !strings.Contains(string(out), `"hosts": 1`) {
			b.Fatalf("spawn did not hand the agent to the host: %s", out)
		}
		sa := t.findAgent(ctx, name)
		t.waitServedBy(ctx, []*town.Agent{sa}, h.id, 30*time.Second)
		t.send(ctx, sa)
		t.nextStart()
		t.waitTurnCompleted(ctx, sa, "0")
	}
	host.report(b, "host-")
	cmd.report(b, "spawn-cmd-")
}

func (t *serveTown) findAgent(ctx context.Context, name string) *town.Agent {
	t.b.Helper()
	as, err := t.store.ListAgents(ctx)
	if err != nil {
		t.b.Fatal(err)
	}
	for _, a := range as {
		if a.Name == name {
			return a
		}
	}
	t.b.Fatalf("no agent %s", name)
	return nil
}

// BenchmarkServeFailover: 50 agents on one host with --lease-ttl 3s; a
// second host is started, then the first is killed (-9, with its plugin
// processes) and a message is sent at once to each of the 50 agents.
// Measured from the kill: until the last agent's lease names the new host
// (served-), and until the last of the 50 messages has its turn started
// (turn-). Each iteration kills the host the previous one failed over to.
// TTHOST_BENCH_FAILOVER_TTL (a Go duration) replaces the 3 s, e.g. with the
// default 15s.
func BenchmarkServeFailover(b *testing.B) {
	const n = 50
	ttl := 3 * time.Second
	if v := os.Getenv("TTHOST_BENCH_FAILOVER_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		ttl = d
	}
	t := startServeTown(b, nil)
	ctx := context.Background()
	cur := t.startHost("fail0", n+10, ttl)
	for i := range n {
		t.newAgent(ctx, fmt.Sprintf("fo%d", i+1))
	}
	t.waitServedBy(ctx, t.agents, cur.id, 60*time.Second)
	t.warm(ctx, t.agents)
	var served, turned samples
	i := 0
	for b.Loop() {
		i++
		next := t.startHost(fmt.Sprintf("fail%d", i), n+10, ttl)
		after := make([]string, n)
		for j, a := range t.agents {
			after[j] = t.lastEvent(ctx, a)
		}
		killed := time.Now()
		cur.kill9()
		for _, a := range t.agents {
			t.send(ctx, a)
		}
		type result struct {
			at  time.Time
			err error
		}
		servedAt := make(chan result, 1)
		go func() {
			at, err := t.servedBy(ctx, t.agents, next.id, 60*time.Second)
			servedAt <- result{at, err}
		}()
		var last time.Time
		for range n {
			last = t.nextStart()
		}
		turned = append(turned, last.Sub(killed))
		r := <-servedAt
		if r.err != nil {
			b.Fatal(r.err)
		}
		served = append(served, r.at.Sub(killed))
		for j, a := range t.agents {
			t.waitTurnCompleted(ctx, a, after[j])
		}
		t.waitIdle(ctx, t.agents)
		cur = next
	}
	served.report(b, "served-")
	turned.report(b, "turn-")
}
