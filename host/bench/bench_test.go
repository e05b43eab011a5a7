// Package bench measures tthost against its targets with real processes:
// a real redis-server, the real tthost binary and plugin processes. Run it
// with `make bench`; docs/benchmarks.md records the numbers. Benchmarks
// report medians and p99 (b.ReportMetric), never assert on time.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// samples collects one duration per iteration and reports their median and
// p99 in milliseconds.
type samples []time.Duration

func (s samples) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append(samples(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	i := int(q*float64(len(c)-1) + 0.5)
	return c[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s samples) report(b *testing.B, prefix string) {
	b.ReportMetric(ms(s.quantile(0.5)), prefix+"median-ms")
	b.ReportMetric(ms(s.quantile(0.99)), prefix+"p99-ms")
}

func oneshotPlugin(b *testing.B) (string, []byte) {
	dir := testenv.Binaries(b)
	path := filepath.Join(dir, "tthost-backend-oneshot")
	return path, sdktest.SHA256File(b, path)
}

// BenchmarkPluginColdStart: exec → handshake → Describe of the one-shot
// plugin (target ≤ 25 ms at the median). Stopping it is not measured.
func BenchmarkPluginColdStart(b *testing.B) {
	path, sum := oneshotPlugin(b)
	procs := sdktest.TrackProcesses(b)
	var s samples
	for b.Loop() {
		start := time.Now()
		p, err := client.Launch(context.Background(), client.Config{
			Path: path, Checksum: sum, Env: []string{procs.Env()}, Logger: hclog.NewNullLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		s = append(s, time.Since(start))
		b.StopTimer()
		if err := p.Stop(5 * time.Second); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	s.report(b, "")
}

// BenchmarkOneShotTurnOverhead runs the same trivial command once per
// iteration directly with os/exec and as a turn through the one-shot plugin
// process, alternating, so both are measured in the same run (target: the
// plugin adds ≤ 5 ms at the median).
func BenchmarkOneShotTurnOverhead(b *testing.B) {
	path, sum := oneshotPlugin(b)
	procs := sdktest.TrackProcesses(b)
	ctx := context.Background()
	p, err := client.Launch(ctx, client.Config{Path: path, Checksum: sum, Env: []string{procs.Env()}, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	workdir := b.TempDir()
	const command = "cat >/dev/null; echo done"
	sess, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "bench", Command: command, Workdir: workdir})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close(ctx, sdk.CloseImmediate)
	waitKind(b, sess.Events(), sdk.EventAwaitingInput, "")
	prompt := strings.Repeat("a prompt line\n", 200)

	var direct, plugin samples
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command("sh", "-c", command)
		cmd.Dir = workdir
		cmd.Stdin = strings.NewReader(prompt)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))

		start = time.Now()
		d, err := sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: prompt})
		if err != nil {
			b.Fatal(err)
		}
		ev := waitKind(b, sess.Events(), sdk.EventTurnCompleted, d.TurnID)
		plugin = append(plugin, time.Since(start))
		if ev.Completed.Status != sdk.StatusCompleted {
			b.Fatalf("turn %s: %+v", d.TurnID, ev.Completed)
		}
		waitKind(b, sess.Events(), sdk.EventAwaitingInput, "")
	}
	direct.report(b, "direct-")
	plugin.report(b, "plugin-")
	b.ReportMetric(ms(plugin.quantile(0.5)-direct.quantile(0.5)), "added-median-ms")
}

func waitKind(b *testing.B, ch <-chan sdk.Event, kind sdk.EventKind, turn string) sdk.Event {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				b.Fatalf("event stream ended while waiting for %s", kind)
			}
			if ev.Kind == kind && (turn == "" || ev.TurnID == turn) {
				return ev
			}
		case <-timeout:
			b.Fatalf("no %s event within 30s", kind)
		}
	}
}

// benchTown is a town served by real `tthost agent-loop` processes.
type benchTown struct {
	b      *testing.B
	procs  *sdktest.Processes
	redis  *testenv.Redis // kill and restart it with townOpts.restartable
	store  *town.Store
	agent  *town.Agent // the first agent
	agents []*town.Agent
	loops  []*loopProc
	bin    string   // directory of tthost and its plugins
	root   string   // the town's directory
	env    []string // added to the agent loops' environment
}

// townOpts shapes a benchmark town.
type townOpts struct {
	// command is the shell command of the CLI "bench" (one-shot).
	command string
	// cli is the agents' CLI (default "bench").
	cli string
	// configure changes the config before it is saved.
	configure func(*config.Config)
	// env is added to the agent loops' environment.
	env []string
	// agents is how many agents, each with its own agent-loop (default 1).
	agents int
	// restartable gives redis-server an append-only file, so the
	// benchmark can kill and restart it with its data.
	restartable bool
}

// startTown registers the agents and starts their agent-loops (idle
// timeout off, many rounds).
func startTown(b *testing.B, command string) *benchTown {
	return startTownWith(b, townOpts{command: command})
}

func startTownWith(b *testing.B, o townOpts) *benchTown {
	dir := testenv.Binaries(b)
	procs := sdktest.TrackProcesses(b)
	r := testenv.StartRedisWith(b, testenv.RedisOptions{Unix: true, AppendOnly: o.restartable, Env: []string{procs.Env()}})
	root, err := os.MkdirTemp("", "ttbench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(root) })
	cfg := config.New("bench")
	// Plugins stop with a killed tthost here, so a test's kill leaves
	// nothing behind; the reattach tests set a window of their own.
	cfg.TTHost.ReattachWindowSecs = 0
	if o.command != "" {
		cfg.AgentCLIs["bench"] = config.AgentCLI{Name: "bench", Command: o.command}
	}
	cfg.Agent.IdleTimeoutSecs = 0
	if o.configure != nil {
		o.configure(cfg)
	}
	if err := cfg.Save(filepath.Join(root, config.FileName)); err != nil {
		b.Fatal(err)
	}
	if o.cli == "" {
		o.cli = "bench"
	}
	if o.agents == 0 {
		o.agents = 1
	}
	store := town.New(r.Client, cfg.Name)
	t := &benchTown{b: b, procs: procs, redis: r, store: store, bin: dir, root: root, env: o.env}
	ctx := context.Background()
	for i := range o.agents {
		a, err := store.CreateAgent(ctx, town.AgentSpec{Name: fmt.Sprintf("bencher%d", i+1), CLI: o.cli})
		if err != nil {
			b.Fatal(err)
		}
		t.agents = append(t.agents, a)
		t.loops = append(t.loops, t.startLoop(a))
	}
	t.agent = t.agents[0]
	return t
}

// startLoop starts an agent-loop for a; it is stopped (a stop request, then
// SIGKILL after 15 s) when the benchmark ends. done is closed when it exits.
func (t *benchTown) startLoop(a *town.Agent) *loopProc {
	b := t.b
	cmd := exec.Command(filepath.Join(t.bin, "tthost"), "--town", t.root, "agent-loop", a.Name, a.ID, "1000000")
	cmd.Env = append(append(t.procs.Environ(), "REDIS_URL="+t.redis.URL), t.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logPath := filepath.Join(t.root, a.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	lp := &loopProc{cmd: cmd, done: make(chan struct{}), out: &testenv.Buffer{}}
	cmd.Stdout = io.MultiWriter(logf, lp.out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(lp.done); logf.Close() }()
	b.Cleanup(func() {
		select {
		case <-lp.done:
			return
		default:
		}
		_ = t.store.RequestStop(context.Background(), a.ID)
		select {
		case <-lp.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-lp.done
		}
		if b.Failed() {
			log, _ := os.ReadFile(logPath)
			b.Logf("%s log:\n%s", a.Name, log)
		}
	})
	return lp
}

// loopProc is a running agent-loop.
type loopProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *testenv.Buffer // its log, to wait for a line
}

// waitEvent follows the agent's event stream after the entry id after and
// returns the id of the first event of type typ.
func (t *benchTown) waitEvent(typ town.EventType, after string) string {
	t.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var id string
	stop := errors.New("found")
	err := t.store.FollowEvents(ctx, t.store.Keys().EventsAgent(t.agent.ID), after, func(en town.EventEntry) error {
		if en.Event != nil && en.Event.Type == typ {
			id = en.ID
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.b.Fatalf("no %s event: %v", typ, err)
	}
	return id
}

// BenchmarkWakeLatency: a message pushed to a waiting agent → its CLI
// process started (target median ≤ 5 ms; Tinytown's one-shot loop sleeps
// 1 s between rounds). The CLI writes a line to a FIFO first thing; the
// benchmark timestamps its arrival.
func BenchmarkWakeLatency(b *testing.B) {
	fifoDir, err := os.MkdirTemp("", "ttfifo")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(fifoDir)
	fifo := filepath.Join(fifoDir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		b.Fatal(err)
	}
	t := startTown(b, fmt.Sprintf("echo started > %s; cat >/dev/null", fifo))
	// Keep the FIFO open for reading (O_RDWR so it never sees EOF).
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	started := make(chan time.Time, 16)
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			started <- time.Now()
		}
	}()
	ctx := context.Background()

	// Warm up: the first turn also launches the plugin.
	last := t.roundTrip(ctx, started, "")
	var wake, direct samples
	for b.Loop() {
		var took time.Duration
		took, last = t.timedRoundTrip(ctx, started, last)
		wake = append(wake, took)
		// Baseline in the same run: the same command started directly, so
		// the machine's own process start-up cost is visible.
		direct = append(direct, directStart(b, fifo, started))
	}
	wake.report(b, "")
	direct.report(b, "exec-")
	b.ReportMetric(ms(wake.quantile(0.5)-direct.quantile(0.5)), "loop-median-ms")
}

// directStart runs the CLI's first command with os/exec and measures until
// its line arrives on the FIFO.
func directStart(b *testing.B, fifo string, started <-chan time.Time) time.Duration {
	b.Helper()
	cmd := exec.Command("sh", "-c", "echo started > "+fifo+"; cat >/dev/null")
	cmd.Stdin = strings.NewReader("prompt")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var at time.Time
	select {
	case at = <-started:
	case <-time.After(30 * time.Second):
		b.Fatal("the direct command did not start")
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	return at.Sub(start)
}

func (t *benchTown) roundTrip(ctx context.Context, started <-chan time.Time, after string) string {
	_, id := t.timedRoundTrip(ctx, started, after)
	return id
}

// timedRoundTrip sends a message, measures until the CLI started, and
// waits for the turn to complete and the agent to be idle again.
func (t *benchTown) timedRoundTrip(ctx context.Context, started <-chan time.Time, after string) (time.Duration, string) {
	t.b.Helper()
	msg := town.NewTask(town.SupervisorID, t.agent.ID, "wake up")
	sent := time.Now()
	if err := t.store.Send(ctx, msg); err != nil {
		t.b.Fatal(err)
	}
	var at time.Time
	select {
	case at = <-started:
	case <-time.After(30 * time.Second):
		t.b.Fatal("the CLI did not start within 30s")
	}
	// The round's last event is the turn completion; the loop is then on
	// its way back to waiting.
	id := t.waitEvent(town.EventAgentTurnCompleted, after)
	return at.Sub(sent), id
}

// BenchmarkIdleRedisCommands: Redis commands per second issued by one idle
// agent, from INFO commandstats over a 15 s window (target ≤ 1; Tinytown's
// persistent loop issues several every 250 ms).
func BenchmarkIdleRedisCommands(b *testing.B) {
	t := startTown(b, "cat >/dev/null")
	ctx := context.Background()
	// Let the loop reach its idle wait: its first heartbeat and idle write
	// come with the first intake.
	t.waitIdle(ctx)
	// One 15 s window is the measurement, whatever b.N is: the quantity is
	// a rate over time, not a per-iteration cost.
	const window = 15 * time.Second
	before, beforeBy := t.commandCounts(ctx)
	start := time.Now()
	time.Sleep(window) // the measurement window itself: there is nothing to wait for
	after, afterBy := t.commandCounts(ctx)
	for name, n := range afterBy {
		if d := n - beforeBy[name]; d > 0 {
			b.Logf("%s: %d in %s", name, d, window)
		}
	}
	perSec := float64(after-before-1) / time.Since(start).Seconds() // -1: our own INFO
	for b.Loop() {
	}
	b.ReportMetric(perSec, "redis-cmds/s")
}

func (t *benchTown) waitIdle(ctx context.Context) {
	t.b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a, err := t.store.GetAgent(ctx, t.agent.ID)
		if err == nil && a.State == town.StateIdle {
			return
		}
		time.Sleep(50 * time.Millisecond) // state has no event of its own when becoming idle
	}
	t.b.Fatal("the agent did not become idle")
}

// commandCount sums calls over INFO commandstats.
func (t *benchTown) commandCount(ctx context.Context) int64 {
	total, _ := t.commandCounts(ctx)
	return total
}

// commandCounts is INFO commandstats: the calls in all and by command.
func (t *benchTown) commandCounts(ctx context.Context) (int64, map[string]int64) {
	t.b.Helper()
	return commandCounts(t.b, ctx, t.redis.Client)
}

// commandCounts reads INFO commandstats: the calls of every command the
// server ran, in all and by command.
func commandCounts(b testing.TB, ctx context.Context, rdb *redis.Client) (int64, map[string]int64) {
	b.Helper()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	by := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(n, 10, 64)
		if err == nil {
			total += v
			by[strings.TrimPrefix(name, "cmdstat_")] = v
		}
	}
	return total, by
}
