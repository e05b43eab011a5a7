package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

// turnScript is the CLI of the serve tests: one line "start PID" when a
// turn begins and "end PID" when it finishes, in $E2E_DIR/turns-NAME, so a
// test counts an agent's turns exactly and sees overlapping runs. When
// $E2E_DIR/slow-NAME exists the turn removes it and sleeps (once): a turn
// that is surely running when its host is killed.
const turnScript = `#!/bin/sh
prompt=$(cat)
f="$E2E_DIR/turns-$TINYTOWN_AGENT_NAME"
echo "start $$" >> "$f"
if [ -e "$E2E_DIR/slow-$TINYTOWN_AGENT_NAME" ]; then
	rm -f "$E2E_DIR/slow-$TINYTOWN_AGENT_NAME"
	echo "cli: sleeping"
	sleep 120
fi
echo "end $$" >> "$f"
echo "cli: handled"
`

// useTurnCLI adds the "turn" CLI (turnScript) to the town's config.
func (e *env) useTurnCLI() {
	e.t.Helper()
	p := filepath.Join(e.dir, "turn.sh")
	if err := os.WriteFile(p, []byte(turnScript), 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.cfg.AgentCLIs["turn"] = config.AgentCLI{Name: "turn", Command: "sh " + p}
	e.saveConfig()
}

// run runs a tthost command to its end and returns its stdout (stderr
// apart, so --json output parses); a non-zero exit fails the test.
func (e *env) run(args ...string) []byte {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(e.bin, "tthost"), append([]string{"--town", e.dir}, args...)...)
	cmd.Env = append(append(e.procs.Environ(), "REDIS_URL="+e.redis.URL, "E2E_DIR="+e.work), e.extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("tthost %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.Bytes()
}

func (e *env) runJSON(v any, args ...string) {
	e.t.Helper()
	out := e.run(args...)
	if err := json.Unmarshal(out, v); err != nil {
		e.t.Fatalf("tthost %s: %v in:\n%s", strings.Join(args, " "), err, out)
	}
}

type spawnResult struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Pid   int    `json:"pid"`
	Hosts int    `json:"hosts"`
}

// spawn registers an agent with `tthost spawn --cli turn --json`.
func (e *env) spawn(name string) spawnResult {
	e.t.Helper()
	var r spawnResult
	e.runJSON(&r, "spawn", name, "--cli", "turn", "--max-rounds", "10", "--json")
	if r.ID == "" {
		e.t.Fatalf("spawn %s: no id in %+v", name, r)
	}
	return r
}

type listRow struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	State           string `json:"state"`
	RoundsCompleted uint64 `json:"rounds_completed"`
	Inbox           int64  `json:"inbox"`
	InFlight        int64  `json:"in_flight"`
	ServedBy        string `json:"served_by"`
	Wanted          bool   `json:"wanted"`
}

// list returns `tthost list --json` by agent id.
func (e *env) list() map[string]listRow {
	e.t.Helper()
	var rows []listRow
	e.runJSON(&rows, "list", "--json")
	out := make(map[string]listRow, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

type hostRow struct {
	ID    string `json:"id"`
	Alive bool   `json:"alive"`
	PID   int    `json:"pid"`
	Load  int    `json:"load"`
}

func (e *env) hosts() []hostRow {
	e.t.Helper()
	var rows []hostRow
	e.runJSON(&rows, "hosts", "--json")
	return rows
}

// serve starts `tthost serve` with the given id and flags.
func (e *env) serve(id string, flags ...string) *proc {
	e.t.Helper()
	return e.tthost("", append([]string{"serve", "--host-id", id}, flags...)...)
}

// changes fires on every write to the town's keys in Redis (keyspace
// events, turned on for the test's server) and every change of the CLI's
// turn files: what waitUntil re-checks its condition on.
func (e *env) changes() <-chan struct{} {
	if e.changed == nil {
		testenv.EnableKeyspaceEvents(e.t, e.redis.Client)
		e.changed = testenv.Merge(e.t,
			testenv.WatchKeyspace(e.t, e.redis.Client, e.store.Keys().Prefix()),
			testenv.WatchDir(e.t, e.work))
	}
	return e.changed
}

// waitUntil re-checks cond (state in Redis or in the turn files) after
// every change of either until it holds, failing the test after timeout
// with what() describing the last state seen.
func (e *env) waitUntil(timeout time.Duration, what func() string, cond func() bool) {
	e.t.Helper()
	if !testenv.WaitFor(e.changes(), timeout, cond) {
		e.t.Fatalf("not within %s: %s", timeout, what())
	}
}

// waitGone waits until every process of pids has exited (on pidfds),
// failing the test with what and the survivors after timeout.
func (e *env) waitGone(pids []int, timeout time.Duration, what string) {
	e.t.Helper()
	if left := testenv.WaitAllExit(pids, timeout); len(left) != 0 {
		var desc []string
		for _, p := range left {
			desc = append(desc, fmt.Sprintf("%d %s", p, sdktest.Cmdline(p)))
		}
		e.t.Fatalf("%s: still running after %s: %v", what, timeout, desc)
	}
}

// owners returns the lease owners of the agents (missing: not served).
func (e *env) owners(ids []string) map[string]town.LeaseOwner {
	e.t.Helper()
	o, err := e.store.LeaseOwners(context.Background(), ids)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// waitServed waits until every agent has a lease held by one of hosts.
func (e *env) waitServed(ids []string, timeout time.Duration, hosts ...string) map[string]town.LeaseOwner {
	e.t.Helper()
	var o map[string]town.LeaseOwner
	unserved := func() []string {
		var out []string
		for _, id := range ids {
			if own, ok := o[id]; !ok || !slices.Contains(hosts, own.HostID) {
				out = append(out, id)
			}
		}
		return out
	}
	e.waitUntil(timeout, func() string {
		return fmt.Sprintf("%d agent(s) not served by %v: %v", len(unserved()), hosts, unserved())
	},
		func() bool { o = e.owners(ids); return len(unserved()) == 0 })
	return o
}

// waitRounds waits until every agent has completed n rounds.
func (e *env) waitRounds(ids []string, n uint64, timeout time.Duration) {
	e.t.Helper()
	var behind []string
	e.waitUntil(timeout, func() string { return fmt.Sprintf("agents below %d round(s): %v", n, behind) }, func() bool {
		behind = behind[:0]
		for _, id := range ids {
			if a := e.getAgent(id); a.RoundsCompleted < n {
				behind = append(behind, a.Name)
			}
		}
		return len(behind) == 0
	})
}

// turnLines reads the turn file of an agent.
func (e *env) turnLines(name string) []string {
	b, err := os.ReadFile(filepath.Join(e.work, "turns-"+name))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// turns parses an agent's turn file into (start|end, pid) pairs.
func (e *env) turns(name string) [][2]string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.work, "turns-"+name))
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			e.t.Fatalf("turn file of %s: bad line %q", name, l)
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
}

// ppid reads a process's parent pid from /proc (0 when it is gone).
func ppid(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// descendants returns the test's live processes below pid.
func (e *env) descendants(pid int) []int {
	alive := e.procs.Alive()
	parent := map[int]int{}
	for _, p := range alive {
		parent[p] = ppid(p)
	}
	var out []int
	for _, p := range alive {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
			if _, ok := parent[q]; !ok {
				break
			}
		}
	}
	return out
}

// procsMatching returns the test's live processes whose command line
// contains s.
func (e *env) procsMatching(s string) []string {
	var out []string
	for _, p := range e.procs.Alive() {
		if c := sdktest.Cmdline(p); strings.Contains(c, s) {
			out = append(out, fmt.Sprintf("%d %s", p, c))
		}
	}
	return out
}

// oneshotChildren counts the host's direct children that are the
// one-shot plugin.
func (e *env) oneshotChildren(hostPid int) []string {
	var out []string
	for _, p := range e.procs.Alive() {
		if c := sdktest.Cmdline(p); ppid(p) == hostPid && strings.Contains(c, "tthost-backend-oneshot") {
			out = append(out, fmt.Sprintf("%d %s", p, c))
		}
	}
	return out
}

// stopHost sends SIGTERM to the host and checks it exits 0 with nothing
// left in its process group.
func (e *env) stopHost(p *proc) {
	e.t.Helper()
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	if code := p.wait(e.t, long); code != 0 {
		e.t.Fatalf("serve exited %d on SIGTERM:\n%s", code, p.out.String())
	}
	var group []int
	for _, q := range e.procs.Alive() {
		if g, err := syscall.Getpgid(q); err == nil && g == pid {
			group = append(group, q)
		}
	}
	e.waitGone(group, 10*time.Second, fmt.Sprintf("process group %d of the stopped host", pid))
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// TestServeFiftyAgentsOneHost: one host serves 50 spawned agents over one
// one-shot plugin process, runs exactly one turn per message, and stops
// cleanly on SIGTERM.
func TestServeFiftyAgentsOneHost(t *testing.T) {
	e := newEnv(t)
	e.useTurnCLI()
	h := e.serve("solo")
	e.waitUntil(long, func() string { return "no alive host:\n" + h.out.String() }, func() bool {
		hs := e.hosts()
		return len(hs) == 1 && hs[0].Alive
	})

	var ids []string
	start := time.Now()
	for _, n := range names("a", 50) {
		r := e.spawn(n)
		if r.Pid != 0 || r.Hosts != 1 {
			t.Fatalf("spawn %s: pid %d hosts %d; want served by the one host, no agent-loop", n, r.Pid, r.Hosts)
		}
		ids = append(ids, r.ID)
	}
	t.Logf("spawned 50 agents in %s", time.Since(start))
	e.waitServed(ids, long, "solo")
	if loops := e.procsMatching("agent-loop"); len(loops) != 0 {
		t.Fatalf("agent-loop processes run although a host serves the agents:\n%s", strings.Join(loops, "\n"))
	}
	for _, id := range ids {
		e.send(id, "one piece of work")
	}
	start = time.Now()
	e.waitRounds(ids, 1, long)
	t.Logf("50 turns done in %s", time.Since(start))

	rows := e.list()
	for _, id := range ids {
		r := rows[id]
		if lines := e.turnLines(r.Name); len(lines) != 4 || lines[0] != "start" || lines[2] != "end" {
			t.Errorf("%s: turn file %q; want one start and one end", r.Name, lines)
		}
		if r.RoundsCompleted != 1 || r.Inbox != 0 || r.InFlight != 0 || r.ServedBy != "host solo" || !r.Wanted {
			t.Errorf("%s: %+v; want 1 round, inbox and in-flight empty, served by host solo", r.Name, r)
		}
	}
	if got := e.oneshotChildren(h.cmd.Process.Pid); len(got) != 1 {
		t.Errorf("the host runs %d one-shot plugin processes, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}

	e.stopHost(h)
	for _, hr := range e.hosts() {
		if hr.Alive {
			t.Errorf("host %s still alive after SIGTERM", hr.ID)
		}
	}
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestServeCapacity: a host serves at most --capacity agents; the rest
// stay wanted until a second host takes them, and no agent is served by
// both.
func TestServeCapacity(t *testing.T) {
	e := newEnv(t)
	e.useTurnCLI()
	h1 := e.serve("c1", "--capacity", "10")
	e.waitUntil(long, func() string { return "no alive host" }, func() bool { return len(e.hosts()) == 1 })
	var ids []string
	for _, n := range names("c", 15) {
		ids = append(ids, e.spawn(n).ID)
	}
	count := func(o map[string]town.LeaseOwner, host string) int {
		n := 0
		for _, own := range o {
			if own.HostID == host {
				n++
			}
		}
		return n
	}
	var o map[string]town.LeaseOwner
	e.waitUntil(long, func() string { return fmt.Sprintf("%d served by c1", count(o, "c1")) }, func() bool {
		o = e.owners(ids)
		return count(o, "c1") == 10
	})
	rows := e.list()
	served, unserved := 0, 0
	for _, id := range ids {
		switch r := rows[id]; {
		case r.ServedBy == "host c1" && r.Wanted:
			served++
		case r.ServedBy == "" && r.Wanted:
			unserved++
		default:
			t.Errorf("%s: served_by %q wanted %v", r.Name, r.ServedBy, r.Wanted)
		}
	}
	if served != 10 || unserved != 5 {
		t.Fatalf("%d served by c1, %d wanted and unserved; want 10 and 5", served, unserved)
	}

	h2 := e.serve("c2", "--capacity", "10")
	e.waitServed(ids, long, "c1", "c2")
	rows = e.list()
	by := map[string]int{}
	for _, id := range ids {
		by[rows[id].ServedBy]++
	}
	if by["host c1"]+by["host c2"] != 15 || by["host c1"] > 10 || by["host c2"] > 10 {
		t.Errorf("served: %v; want all 15 split between c1 and c2, at most 10 each", by)
	}
	for _, hr := range e.hosts() {
		if hr.Alive && hr.Load > 10 {
			t.Errorf("host %s has load %d over its capacity", hr.ID, hr.Load)
		}
	}
	e.stopHost(h1)
	e.stopHost(h2)
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestServeThreeHostsKillOne: three hosts share 60 agents; h1 is killed
// (SIGKILL, a dead machine) while all its agents are in a turn. h2 and h3
// take its agents after the lease TTL and every message is completed
// exactly once, with no two runs of an agent's turn overlapping.
//
// The overlap rule on the turn files: each "start PID" must be followed by
// "end PID" of the same run before the next "start", except a run whose
// CLI was a process of the killed host (recorded before the kill), which
// has no end. Exactly one "end" per agent: one completed turn.
func TestServeThreeHostsKillOne(t *testing.T) {
	e := newEnv(t)
	e.useTurnCLI()
	hs := map[string]*proc{}
	for _, id := range []string{"h1", "h2", "h3"} {
		hs[id] = e.serve(id, "--lease-ttl", "3s")
	}
	e.waitUntil(long, func() string { return "hosts not alive" }, func() bool {
		n := 0
		for _, hr := range e.hosts() {
			if hr.Alive {
				n++
			}
		}
		return n == 3
	})
	var ids []string
	name := map[string]string{}
	for _, n := range names("k", 60) {
		r := e.spawn(n)
		if r.Hosts != 3 || r.Pid != 0 {
			t.Fatalf("spawn %s: %+v; want 3 hosts, no agent-loop", n, r)
		}
		ids = append(ids, r.ID)
		name[r.ID] = n
	}
	o := e.waitServed(ids, long, "h1", "h2", "h3")
	per := map[string][]string{}
	for _, id := range ids {
		per[o[id].HostID] = append(per[o[id].HostID], id)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if len(per[h]) == 0 {
			t.Fatalf("host %s serves no agent: %v", h, per)
		}
	}
	t.Logf("agents per host: h1 %d, h2 %d, h3 %d", len(per["h1"]), len(per["h2"]), len(per["h3"]))
	// h1's agents get a slow turn, the others a quick one.
	for _, id := range per["h1"] {
		if err := os.WriteFile(filepath.Join(e.work, "slow-"+name[id]), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		e.send(id, "one piece of work")
	}
	// Every h1 agent is in its turn: working, and its CLI has started.
	e.waitUntil(long, func() string { return "h1's agents not all in a turn" }, func() bool {
		for _, id := range per["h1"] {
			if a := e.getAgent(id); a.State != town.StateWorking || len(e.turnLines(name[id])) < 2 {
				return false
			}
		}
		return true
	})
	h1pid := hs["h1"].cmd.Process.Pid
	doomed := e.descendants(h1pid)
	kinds := map[string]int{}
	for _, p := range doomed {
		f := strings.Fields(sdktest.Cmdline(p))
		if len(f) > 0 {
			kinds[filepath.Base(f[0])]++
		}
	}
	t.Logf("killing h1 (pid %d) with %d descendant(s): %v", h1pid, len(doomed), kinds)
	killedAt := time.Now()
	if err := syscall.Kill(h1pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := hs["h1"].wait(t, long); code != -1 {
		t.Logf("h1 exit code %d", code)
	}
	// Its plugins die with it (parent-death signal), and their CLIs too.
	e.waitGone(doomed, 10*time.Second, "h1's processes outlive it")

	t.Logf("h1's processes gone %s after the kill", time.Since(killedAt))
	e.waitServed(ids, 3*time.Second+15*time.Second+long, "h2", "h3")
	t.Logf("all agents served by h2/h3 %s after the kill", time.Since(killedAt))
	e.waitRounds(ids, 1, long)
	t.Logf("all turns completed %s after the kill", time.Since(killedAt))
	// Each agent counts once in the loads of the live hosts (a host
	// writes its load with each heartbeat, so wait for the next one).
	var loads []hostRow
	e.waitUntil(long, func() string { return fmt.Sprintf("hosts: %+v; want h2+h3 load 60, h1 dead", loads) }, func() bool {
		loads = e.hosts()
		sum := 0
		for _, hr := range loads {
			if hr.Alive {
				if hr.ID == "h1" {
					return false
				}
				sum += hr.Load
			}
		}
		return sum == 60
	})

	killed := map[string]bool{}
	for _, p := range doomed {
		killed[strconv.Itoa(p)] = true
	}
	rows := e.list()
	for _, id := range ids {
		n := name[id]
		r := rows[id]
		if r.RoundsCompleted != 1 || r.Inbox != 0 || r.InFlight != 0 {
			t.Errorf("%s: rounds %d inbox %d in-flight %d; want 1, 0, 0", n, r.RoundsCompleted, r.Inbox, r.InFlight)
		}
		if r.ServedBy != "host h2" && r.ServedBy != "host h3" {
			t.Errorf("%s: served_by %q after h1 died", n, r.ServedBy)
		}
		open, ends := "", 0
		for _, l := range e.turns(n) {
			switch l[0] {
			case "start":
				if open != "" && !killed[open] {
					t.Errorf("%s: run %s started while run %s was going: %v", n, l[1], open, e.turns(n))
				}
				open = l[1]
			case "end":
				if l[1] != open {
					t.Errorf("%s: end of %s, open run %q: %v", n, l[1], open, e.turns(n))
				}
				open = ""
				ends++
			}
		}
		if open != "" && !killed[open] {
			t.Errorf("%s: run %s never ended", n, open)
		}
		if slices.Contains(per["h1"], id) != (len(e.turns(n)) == 3) {
			t.Errorf("%s (on h1: %v): turn file %v; want a killed run and one complete run exactly for h1's agents", n, slices.Contains(per["h1"], id), e.turns(n))
		}
		if ends != 1 {
			t.Errorf("%s: %d completed CLI run(s), want 1: %v", n, ends, e.turns(n))
		}
	}
	stopping := time.Now()
	e.stopHost(hs["h2"])
	e.stopHost(hs["h3"])
	t.Logf("h2 and h3 stopped in %s", time.Since(stopping))
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestSpawnWithAndWithoutHost: without a live host spawn starts an
// agent-loop of its own; with one it leaves the agent to the host.
func TestSpawnWithAndWithoutHost(t *testing.T) {
	e := newEnv(t)
	e.useTurnCLI()

	alone := e.spawn("alone")
	if alone.Pid <= 0 || alone.Hosts != 0 {
		t.Fatalf("spawn without a host: %+v; want an agent-loop pid and 0 hosts", alone)
	}
	t.Cleanup(func() { _ = syscall.Kill(-alone.Pid, syscall.SIGKILL) })
	if loops := e.procsMatching("agent-loop"); len(loops) != 1 {
		t.Errorf("agent-loop processes: %v; want the one spawn started", loops)
	}
	e.send(alone.ID, "work for the loop")
	e.waitRounds([]string{alone.ID}, 1, long)
	if r := e.list()[alone.ID]; !strings.HasPrefix(r.ServedBy, fmt.Sprintf("pid %d on ", alone.Pid)) {
		t.Errorf("served_by %q; want the agent-loop's pid %d", r.ServedBy, alone.Pid)
	}
	e.run("stop", "alone")
	e.waitGone([]int{alone.Pid}, long, "the agent-loop after stop")

	h := e.serve("withhost")
	e.waitUntil(long, func() string { return "no alive host" }, func() bool {
		hs := e.hosts()
		return len(hs) == 1 && hs[0].Alive
	})
	hosted := e.spawn("hosted")
	if hosted.Pid != 0 || hosted.Hosts < 1 {
		t.Fatalf("spawn with a host: %+v; want pid 0 and hosts >= 1", hosted)
	}
	e.send(hosted.ID, "work for the host")
	e.waitRounds([]string{hosted.ID}, 1, long)
	if r := e.list()[hosted.ID]; r.ServedBy != "host withhost" {
		t.Errorf("served_by %q; want host withhost", r.ServedBy)
	}
	if lines := e.turnLines("hosted"); len(lines) != 4 {
		t.Errorf("turn file %q; want one run", lines)
	}
	e.stopHost(h)
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// scrape returns the host's /metrics text.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricLine is the value of the first sample whose line starts with
// prefix ("" when there is none).
func metricLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(l, prefix))
		}
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// An agent tt created is adopted: a host labelled for another CLI leaves
// it alone, an unlabelled one serves it; its turns show in /metrics; when
// the host's shared plugin is killed, the next turn runs on a relaunched
// plugin and the restart is counted.
func TestServeAdoptLabelsMetricsAndPluginCrash(t *testing.T) {
	e := newEnv(t)
	e.useTurnCLI()
	a, err := e.store.CreateAgent(context.Background(), town.AgentSpec{Name: "ttmade", CLI: "turn"})
	if err != nil {
		t.Fatal(err)
	}

	lab := e.serve("lab", "--label", "cli=codex")
	e.waitUntil(long, func() string { return "host lab is not alive" }, func() bool {
		hs := e.hosts()
		return len(hs) == 1 && hs[0].Alive
	})
	e.run("adopt", "ttmade")
	if r := e.list()[a.ID]; !r.Wanted || r.ServedBy != "" {
		t.Fatalf("after adopt with only a codex host: %+v; want wanted and unserved", r)
	}

	addr := freeAddr(t)
	anyHost := e.serve("any", "--listen", addr)
	e.waitServed([]string{a.ID}, long, "any")
	if r := e.list()[a.ID]; r.ServedBy != "host any" {
		t.Fatalf("served_by %q; want host any (lab is labelled cli=codex)", r.ServedBy)
	}

	e.send(a.ID, "first")
	e.waitRounds([]string{a.ID}, 1, long)
	m := scrape(t, addr)
	if v := metricLine(m, `tthost_turns_total{backend="oneshot",cli="turn",outcome="completed"} `); v != "1" {
		t.Errorf("completed turns in /metrics = %q; want 1\n%s", v, m)
	}
	if v := metricLine(m, "tthost_agents_served "); v != "1" {
		t.Errorf("tthost_agents_served = %q; want 1", v)
	}

	pid := anyHost.cmd.Process.Pid
	plugins := e.oneshotChildren(pid)
	if len(plugins) != 1 {
		t.Fatalf("one-shot plugins of host any: %v; want one", plugins)
	}
	var ppidOf int
	fmt.Sscanf(plugins[0], "%d", &ppidOf)
	if err := syscall.Kill(ppidOf, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitGone([]int{ppidOf}, long, "the killed plugin")
	e.send(a.ID, "second")
	e.waitRounds([]string{a.ID}, 2, long)
	if lines := e.turnLines("ttmade"); len(lines) != 8 { // "start PID end PID" per run
		t.Errorf("turn file %q; want two complete runs", lines)
	}
	if now := e.oneshotChildren(pid); len(now) != 1 || now[0] == plugins[0] {
		t.Errorf("one-shot plugins after the crash: %v; want one new process", now)
	}
	m = scrape(t, addr)
	if v := metricLine(m, `tthost_plugin_restarts_total{backend="oneshot"} `); v != "1" {
		t.Errorf("plugin restarts in /metrics = %q; want 1", v)
	}
	if r := e.list()[a.ID]; r.InFlight != 0 || r.Inbox != 0 {
		t.Errorf("after two turns: %+v; want nothing waiting or in flight", r)
	}

	e.run("stop", "ttmade")
	e.waitUntil(long, func() string { return "the stopped agent is still wanted or served" }, func() bool {
		r := e.list()[a.ID]
		return !r.Wanted && r.ServedBy == ""
	})
	e.stopHost(anyHost)
	e.stopHost(lab)
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}
