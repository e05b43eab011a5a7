package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/plugins/codex/codextest"
	"github.com/tthost/tthost/sdk/sdktest"
)

// fakeCodex configures a town whose agents' CLI is `codex`, persistent,
// served by the Codex backend against the fake app-server, which appends
// every message it receives to logPath.
func fakeCodex(b *testing.B, logPath string) townOpts {
	fake := sdktest.Build(b, "github.com/tthost/tthost/plugins/codex/internal/fakeappserver", "bin/fake-codex-app-server")
	return townOpts{
		cli: "codex",
		configure: func(c *config.Config) {
			c.Agent.Persistent = true
			cli := c.AgentCLIs["codex"]
			cli.Command = fake
			c.AgentCLIs["codex"] = cli
		},
		env: []string{"FAKE_CODEX_LOG=" + logPath},
	}
}

// fifoLines opens a FIFO for reading and sends each line with its arrival
// time.
type fifoLine struct {
	at   time.Time
	text string
}

func fifoLines(b *testing.B) (string, <-chan fifoLine) {
	dir, err := os.MkdirTemp("", "ttfifo")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		b.Fatal(err)
	}
	// O_RDWR: the FIFO never sees EOF between the fake's writes.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	ch := make(chan fifoLine, 1024)
	go func() {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			ch <- fifoLine{at: time.Now(), text: sc.Text()}
		}
	}()
	return path, ch
}

func waitLine(b *testing.B, ch <-chan fifoLine, what string, match func(string) bool) fifoLine {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-ch:
			if match(l.text) {
				return l
			}
		case <-timeout:
			b.Fatalf("the app-server did not receive %s within 30s", what)
		}
	}
}

// BenchmarkSteerLatency: an urgent message pushed (tthost's SendUrgent,
// with its wake signal) while a turn runs → `turn/steer` received by the
// app-server (the fake: the model is out of the measurement). Target:
// median ≤ 2 ms, p99 ≤ 10 ms; Tinytown polls every 250 ms (≈ 125 ms median
// by design).
func BenchmarkSteerLatency(b *testing.B) {
	logPath, lines := fifoLines(b)
	t := startTownWith(b, fakeCodex(b, logPath))
	ctx := context.Background()
	if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, "LONG SLEEP_MS=600000")); err != nil {
		b.Fatal(err)
	}
	waitLine(b, lines, "turn/start", func(s string) bool { return strings.Contains(s, `"method":"turn/start"`) })
	i := 0
	steer := func() time.Duration {
		i++
		marker := fmt.Sprintf("STEER_%d_", i)
		sent := time.Now()
		if err := t.store.SendUrgent(ctx, town.NewQuery(town.SupervisorID, t.agent.ID, marker)); err != nil {
			b.Fatal(err)
		}
		got := waitLine(b, lines, "turn/steer", func(s string) bool {
			return strings.Contains(s, `"method":"turn/steer"`) && strings.Contains(s, marker)
		})
		return got.at.Sub(sent)
	}
	for range 10 { // warm up: connections, caches, the first steer's lazy paths
		steer()
	}
	var s samples
	for b.Loop() {
		s = append(s, steer())
	}
	s.report(b, "")
}

// BenchmarkDeltaThroughput: the fake app-server streams 100 000 assistant
// deltas in one turn; measured end to end (turn started → turn completed in
// the agent's event stream), with the Redis commands the whole turn cost
// (INFO commandstats, script internals included).
func BenchmarkDeltaThroughput(b *testing.B) {
	const deltas = 100000
	t := startTownWith(b, fakeCodex(b, os.DevNull))
	ctx := context.Background()
	// Warm up: the first turn starts the plugin and the app-server.
	last := t.turnAndWait(ctx, "warm up", "")
	var rates, cmds []float64
	for b.Loop() {
		before := t.commandCount(ctx)
		start := time.Now()
		last = t.turnAndWait(ctx, fmt.Sprintf("DELTAS=%d", deltas), last)
		took := time.Since(start)
		after := t.commandCount(ctx)
		rates = append(rates, deltas/took.Seconds())
		cmds = append(cmds, float64(after-before-1)/(deltas/1000)) // -1: our own INFO
	}
	b.ReportMetric(median(rates), "deltas/s")
	b.ReportMetric(median(cmds), "redis-cmds/1000-deltas")
}

// turnAndWait sends a task and waits for the agent's next completed turn.
func (t *benchTown) turnAndWait(ctx context.Context, text, after string) string {
	t.b.Helper()
	if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, text)); err != nil {
		t.b.Fatal(err)
	}
	return t.waitEvent(town.EventAgentTurnCompleted, after)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return c[len(c)/2]
}

// BenchmarkMemory: resident memory of what serves live Codex sessions,
// with the REAL codex app-server (offline, mock model): per agent one host
// (tthost agent-loop), one Codex plugin process and one app-server. Reported
// for 1 agent and for 20 agents at once, after each has run one turn.
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			bin := codextest.CodexBinary(b)
			mock := codextest.NewMockModel(b, nil)
			home := codextest.NewCodexHome(b, mock)
			t := startTownWith(b, townOpts{
				cli:    "codex",
				agents: n,
				env:    codextest.Env(home),
				configure: func(c *config.Config) {
					c.Agent.Persistent = true
					cli := c.AgentCLIs["codex"]
					cli.Command = bin + " exec"
					c.AgentCLIs["codex"] = cli
					c.TTHost.Backends = map[string]map[string]string{"codex": {"codex_home": home}}
				},
			})
			ctx := context.Background()
			for _, a := range t.agents {
				if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, a.ID, "hello")); err != nil {
					b.Fatal(err)
				}
			}
			for _, a := range t.agents {
				t.waitAgentEvent(a.ID, town.EventAgentTurnCompleted, 120*time.Second)
			}
			rss := t.rssByRole()
			for b.Loop() {
			}
			for _, role := range []string{"host", "plugin", "app-server"} {
				b.ReportMetric(rss[role]/float64(n), role+"-MB/session")
			}
			b.ReportMetric(rss["host"]+rss["plugin"]+rss["app-server"], "total-MB")
		})
	}
}

// waitAgentEvent waits for an event of typ on one agent's stream.
func (t *benchTown) waitAgentEvent(agentID string, typ town.EventType, timeout time.Duration) {
	t.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop := errors.New("found")
	err := t.store.FollowEvents(ctx, t.store.Keys().EventsAgent(agentID), "", func(en town.EventEntry) error {
		if en.Event != nil && en.Event.Type == typ {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.b.Fatalf("agent %s: no %s event: %v", agentID, typ, err)
	}
}

// rssByRole sums VmRSS (MB) of the town's processes by what they are.
func (t *benchTown) rssByRole() map[string]float64 {
	out := map[string]float64{}
	for _, pid := range t.procs.Alive() {
		cmd := sdktest.Cmdline(pid)
		role := ""
		switch {
		case strings.Contains(cmd, "agent-loop"):
			role = "host"
		case strings.Contains(cmd, "tthost-backend-codex"):
			role = "plugin"
		case strings.Contains(cmd, "app-server"):
			role = "app-server"
		default:
			continue
		}
		out[role] += vmRSS(pid)
	}
	return out
}

func vmRSS(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
