package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Host restarts of `tthost serve` that keep every running turn: a host
// restarted in place (`tthost serve --upgrade`, SIGUSR2) or killed with
// SIGKILL and started again with the same --host-id within the reattach
// window finds its plugin still running its agents' turns, claims its
// agents again and adopts each turn; every turn completes once and no
// message is delivered again. The agents run the shell CLI's WAIT_GATE
// turn (testdata/cli.sh), which works until the test opens the gate.

const adoptedMsg = "adopted the turn the previous worker process left running"

// serveReattachEnv is a town whose hosts' plugins outlive them for 60 s.
func serveReattachEnv(t *testing.T) *env {
	return reattachEnv(t, 60*time.Second)
}

// spawnGated spawns n agents on the test CLI (cli.sh) with
// `tthost spawn --cli test` while a host is alive, so the host serves
// them, and sends each a WAIT_GATE task; it returns their ids once every
// CLI run waits at the gate.
func (e *env) spawnGated(prefix string, n int, host string) (ids []string, name map[string]string) {
	e.t.Helper()
	name = map[string]string{}
	for _, nm := range names(prefix, n) {
		var r spawnResult
		e.runJSON(&r, "spawn", nm, "--cli", "test", "--max-rounds", "10", "--json")
		if r.ID == "" || r.Pid != 0 || r.Hosts != 1 {
			e.t.Fatalf("spawn %s: %+v; want an id, served by the one host, no agent-loop", nm, r)
		}
		ids = append(ids, r.ID)
		name[r.ID] = nm
	}
	e.waitServed(ids, long, host)
	for _, id := range ids {
		e.send(id, "WAIT_GATE build the thing")
	}
	e.waitUntil(reattachTimeout, func() string { return fmt.Sprintf("%d of %d CLI runs at the gate", len(e.gateWaiters()), n) },
		func() bool { return len(e.gateWaiters()) == n })
	return ids, name
}

// waitAdopted waits until every agent's loop has recorded (an event) that
// it adopted the turn its previous process left running.
func (e *env) waitAdopted(ids []string) {
	e.t.Helper()
	var missing []string
	e.waitUntil(reattachTimeout, func() string { return fmt.Sprintf("turns not adopted: %v", missing) }, func() bool {
		missing = missing[:0]
		for _, id := range ids {
			if e.countEvents(id, adoptedMsg) == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
}

// assertEveryTurnOnce checks the end state after the gate opened: n CLI
// runs, each started and ended exactly once; per agent one adopted turn,
// one completion, one round, nothing interrupted or delivered again, and
// its log saying it adopted the turn.
func (e *env) assertEveryTurnOnce(ids []string, name map[string]string) {
	e.t.Helper()
	starts, ends := map[string]int{}, map[string]int{}
	for _, l := range e.runLines() {
		f := strings.Fields(l)
		if len(f) != 2 {
			e.t.Fatalf("runs.log: bad line %q", l)
		}
		switch f[0] {
		case "start":
			starts[f[1]]++
		case "end":
			ends[f[1]]++
		}
	}
	if len(starts) != len(ids) {
		e.t.Errorf("%d CLI runs, want %d (one per agent, none again): %q", len(starts), len(ids), e.runLines())
	}
	for pid, n := range starts {
		if n != 1 || ends[pid] != 1 {
			e.t.Errorf("CLI run %s: %d start(s), %d end(s); want one of each", pid, n, ends[pid])
		}
	}
	for pid := range ends {
		if starts[pid] == 0 {
			e.t.Errorf("CLI run %s ended without a start", pid)
		}
	}
	rows := e.list()
	for _, id := range ids {
		nm := name[id]
		if n := e.countEvents(id, adoptedMsg); n != 1 {
			e.t.Errorf("%s: %d adoption events, want 1:\n%s", nm, n, e.dumpEvents(id))
		}
		if n := e.countEvents(id, "Round 1 completed"); n != 1 {
			e.t.Errorf("%s: %d \"Round 1 completed\" events, want 1:\n%s", nm, n, e.dumpEvents(id))
		}
		evs := e.dumpEvents(id)
		for _, bad := range []string{"interrupted", "re-queued", "delivering them again", "delivered again"} {
			if strings.Contains(evs, bad) {
				e.t.Errorf("%s: events mention %q:\n%s", nm, bad, evs)
			}
		}
		r := rows[id]
		if r.RoundsCompleted != 1 || r.Inbox != 0 || r.InFlight != 0 {
			e.t.Errorf("%s: rounds %d inbox %d in-flight %d; want 1, 0, 0", nm, r.RoundsCompleted, r.Inbox, r.InFlight)
		}
		log, err := os.ReadFile(filepath.Join(e.dir, ".tt", "logs", nm+".log"))
		if err != nil {
			e.t.Errorf("%s: agent log: %v", nm, err)
		} else if !strings.Contains(string(log), adoptedMsg) {
			e.t.Errorf("%s: the agent log does not say it adopted the turn:\n%s", nm, log)
		}
	}
}

// waitHostAlive waits until the town has exactly one live host, id, and
// returns its record.
func (e *env) waitHostAlive(id string) hostRow {
	e.t.Helper()
	var hr hostRow
	e.waitUntil(long, func() string { return fmt.Sprintf("host %s not alive: %+v", id, e.hosts()) }, func() bool {
		for _, r := range e.hosts() {
			if r.ID == id && r.Alive {
				hr = r
				return true
			}
		}
		return false
	})
	return hr
}

// TestServeUpgradeKeepsEveryRunningTurn: `tthost serve --upgrade` restarts
// a host serving 10 agents, each in a turn, in place: same pid, same
// plugin process, every turn adopted by the new process and completed
// once, no message delivered again.
func TestServeUpgradeKeepsEveryRunningTurn(t *testing.T) {
	const n = 10
	e := serveReattachEnv(t)
	h := e.serve("h1")
	hostPid := h.cmd.Process.Pid
	if hr := e.waitHostAlive("h1"); hr.PID != hostPid {
		t.Fatalf("host record pid %d, want the serve process %d", hr.PID, hostPid)
	}
	setup := time.Now()
	ids, name := e.spawnGated("u", n, "h1")
	t.Logf("%d agents spawned, served and at the gate in %s", n, time.Since(setup).Round(time.Millisecond))
	plugins := e.oneshotChildren(hostPid)
	if len(plugins) != 1 {
		t.Fatalf("one-shot plugins of the host: %v; want one", plugins)
	}

	out := string(e.run("serve", "--upgrade", "--host-id", "h1"))
	if !strings.Contains(out, "restarted in place") || !strings.Contains(out, fmt.Sprintf("(pid %d)", hostPid)) {
		t.Fatalf("serve --upgrade said %q; want \"restarted in place (pid %d)\"", out, hostPid)
	}
	t.Logf("serve --upgrade: %s", strings.TrimSpace(out))
	upgraded := time.Now()
	e.waitAdopted(ids)
	t.Logf("all %d turns adopted %s after serve --upgrade returned", n, time.Since(upgraded).Round(time.Millisecond))
	select {
	case <-h.done:
		t.Fatalf("the serve process exited during the restart:\n%s", h.out.String())
	default:
	}
	if hr := e.waitHostAlive("h1"); hr.PID != hostPid {
		t.Errorf("host record pid %d after the restart, want the same %d", hr.PID, hostPid)
	}
	if now := e.oneshotChildren(hostPid); !slices.Equal(now, plugins) {
		t.Errorf("one-shot plugins after the restart: %v; want the same %v", now, plugins)
	}
	if n := strings.Count(h.out.String(), "re-executing"); n != 1 {
		t.Errorf("the host re-executed itself %d times, want 1:\n%s", n, h.out.String())
	}
	if runs := len(e.runLines()); runs != n {
		t.Errorf("runs.log has %d lines before the gate opened, want %d starts: %q", runs, n, e.runLines())
	}

	e.openGate()
	opened := time.Now()
	e.waitRounds(ids, 1, reattachTimeout)
	e.waitUntil(reattachTimeout, func() string { return fmt.Sprintf("runs.log %q", e.runLines()) },
		func() bool { return len(e.runLines()) == 2*n })
	t.Logf("all %d turns completed %s after the gate opened", n, time.Since(opened).Round(time.Millisecond))
	e.assertEveryTurnOnce(ids, name)
	if now := e.oneshotChildren(hostPid); !slices.Equal(now, plugins) {
		t.Errorf("one-shot plugins after the turns: %v; want the same %v", now, plugins)
	}

	stopping := time.Now()
	e.stopHost(h)
	t.Logf("host stopped in %s", time.Since(stopping).Round(time.Millisecond))
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestServeKilledHostIsReplacedByItsNextProcess: a host serving 5 agents,
// each in a turn, is killed with SIGKILL (its plugin survives it); a new
// `tthost serve` with the same --host-id takes the id over, reattaches to
// the plugin and adopts every turn, which completes once.
func TestServeKilledHostIsReplacedByItsNextProcess(t *testing.T) {
	const n = 5
	e := serveReattachEnv(t)
	h := e.serve("h1")
	oldPid := h.cmd.Process.Pid
	e.waitHostAlive("h1")
	ids, name := e.spawnGated("k", n, "h1")
	plugins := e.pluginPids()
	if len(plugins) != 1 {
		t.Fatalf("plugin processes %v, want the one-shot plugin", plugins)
	}

	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait(t, long)
	if now := e.pluginPids(); !slices.Equal(now, plugins) {
		t.Fatalf("plugin processes %v after the host's death, want %v still running", now, plugins)
	}
	if w := len(e.gateWaiters()); w != n {
		t.Fatalf("%d CLI runs at the gate after the host's death, want %d", w, n)
	}

	h2 := e.serve("h1")
	restarted := time.Now()
	e.waitAdopted(ids)
	t.Logf("all %d turns adopted %s after the new host started", n, time.Since(restarted).Round(time.Millisecond))
	if hr := e.waitHostAlive("h1"); hr.PID != h2.cmd.Process.Pid {
		t.Errorf("host record pid %d, want the new process %d", hr.PID, h2.cmd.Process.Pid)
	}
	if now := e.pluginPids(); !slices.Equal(now, plugins) {
		t.Errorf("plugin processes %v after the new host reattached, want the same %v", now, plugins)
	}
	o := e.owners(ids)
	for _, id := range ids {
		if o[id].HostID != "h1" {
			t.Errorf("%s: lease owner %+v, want h1", name[id], o[id])
		}
	}

	e.openGate()
	e.waitRounds(ids, 1, reattachTimeout)
	e.waitUntil(reattachTimeout, func() string { return fmt.Sprintf("runs.log %q", e.runLines()) },
		func() bool { return len(e.runLines()) == 2*n })
	e.assertEveryTurnOnce(ids, name)

	e.stopHost(h2)
	// The plugin was the killed host's child, in its process group: it
	// stops with the new host, which reattached to it.
	e.waitGone(plugins, 10*time.Second, "the reattached plugin after its host stopped")
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}
