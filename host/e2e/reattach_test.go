package e2e

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

// Host restarts that keep running turns (reattach): a worker restarted in
// place (SIGUSR2) or killed with SIGKILL leaves its plugin running its
// turn; the next worker reattaches, adopts the turn, and its outcome is
// written once, its message never delivered again. These tests use the
// one-shot backend with the shell CLI (testdata/cli.sh), whose WAIT_GATE
// turn works until the test opens the gate; realcodex_test.go does the
// same with the real Codex CLI.

const reattachTimeout = 60 * time.Second

// reattachEnv is a town whose workers' plugins survive them for window.
func reattachEnv(t *testing.T, window time.Duration) *env {
	e := newEnv(t)
	e.cfg.TTHost.ReattachWindowSecs = int(window / time.Second)
	e.saveConfig()
	return e
}

// runLines are the CLI's WAIT_GATE runs as runs.log records them, in
// order: "start PID" and "end PID".
func (e *env) runLines() []string {
	b, _ := os.ReadFile(filepath.Join(e.work, "runs.log"))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// gateWaiters are the pids of the CLI runs waiting at the gate now.
func (e *env) gateWaiters() []string {
	m, _ := filepath.Glob(filepath.Join(e.work, "gate-waiting-*"))
	return m
}

func (e *env) openGate() {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.work, "gate-open"), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// pluginPids are the live backend plugin processes of the test.
func (e *env) pluginPids() []int {
	var out []int
	for _, p := range e.procs.Alive() {
		if strings.Contains(sdktest.Cmdline(p), "tthost-backend-") {
			out = append(out, p)
		}
	}
	return out
}

// startGatedTurn starts a worker (from bin, or the shared binaries when
// bin is "") whose agent gets a WAIT_GATE message, and waits until the
// CLI works at the gate.
func (e *env) startGatedTurn(a *town.Agent, bin string) *proc {
	e.t.Helper()
	e.send(a.ID, "WAIT_GATE build the thing")
	p := e.tthost(bin, "agent-loop", a.Name, a.ID, "5")
	e.waitUntil(reattachTimeout, func() string { return "the CLI never reached the gate" }, func() bool { return len(e.gateWaiters()) == 1 })
	return p
}

// waitWorkerAdopted waits until the worker's output after mark says it adopted
// the turn its predecessor left running.
func (e *env) waitWorkerAdopted(p *proc, mark int) {
	e.t.Helper()
	if !p.out.WaitAfter(mark, "adopted the turn the previous worker process left running", reattachTimeout) {
		e.t.Fatalf("the worker did not adopt the turn:\n%s", p.out.String())
	}
}

// stopAfterCompletion waits for the agent's event whose message contains
// done, stops the agent and waits for its worker to exit 0.
func (e *env) stopAfterCompletion(a *town.Agent, p *proc, done string) {
	e.t.Helper()
	e.waitEvent(a.ID, reattachTimeout, "the turn's completion", func(ev *town.TownEvent) bool {
		return strings.Contains(ev.Message, done)
	})
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		e.t.Fatal(err)
	}
	if code := p.wait(e.t, reattachTimeout); code != 0 {
		e.t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
}

// assertOneCompletedRun checks the end state of a turn that survived its
// worker: one CLI run, started and ended once; one completion written;
// nothing interrupted, re-queued or left in flight.
func (e *env) assertOneCompletedRun(a *town.Agent) {
	e.t.Helper()
	if lines := e.runLines(); len(lines) != 2 || !strings.HasPrefix(lines[0], "start ") || lines[1] != "end "+strings.TrimPrefix(lines[0], "start ") {
		e.t.Errorf("CLI runs %q, want exactly one start and its end", lines)
	}
	if n := e.countEvents(a.ID, "Round 1 completed"); n != 1 {
		e.t.Errorf("%d \"Round 1 completed\" events, want 1:\n%s", n, e.dumpEvents(a.ID))
	}
	for _, bad := range []string{"interrupted", "re-queued", "delivering them again"} {
		if strings.Contains(e.dumpEvents(a.ID), bad) {
			e.t.Errorf("the agent's events mention %q:\n%s", bad, e.dumpEvents(a.ID))
		}
	}
	if got := e.getAgent(a.ID).RoundsCompleted; got != 1 {
		e.t.Errorf("rounds_completed %d, want 1", got)
	}
	if n := e.inFlightLen(a.ID); n != 0 {
		e.t.Errorf("%d message(s) still in flight", n)
	}
	if n := e.inboxLen(a.ID); n != 0 {
		e.t.Errorf("%d message(s) back in the inbox: delivered again", n)
	}
	if n := len(e.prompts()); n != 1 {
		e.t.Errorf("the CLI got %d prompts, want 1", n)
	}
}

// A worker restarted in place (SIGUSR2: the binary is checked, the worker
// detaches, the process re-executes itself with the same pid) adopts the
// turn it left running: the turn completes once and is not re-run.
func TestRestartInPlaceKeepsTheRunningTurn(t *testing.T) {
	e := reattachEnv(t, 60*time.Second)
	a := e.agent("keeper")
	p := e.startGatedTurn(a, "")
	plugins := e.pluginPids()
	if len(plugins) != 1 {
		t.Fatalf("plugin processes %v, want the one-shot plugin", plugins)
	}

	mark := p.out.Len()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	e.waitWorkerAdopted(p, mark)
	if now := e.pluginPids(); len(now) != 1 || now[0] != plugins[0] {
		t.Errorf("plugin processes %v after the restart, want the same %v", now, plugins)
	}
	e.openGate()
	e.stopAfterCompletion(a, p, "Round 1 completed")
	e.assertOneCompletedRun(a)
	e.waitGone(plugins, 10*time.Second, "the plugin after the worker stopped")
}

// A worker killed with SIGKILL leaves its plugin running the turn; one that
// finished while no worker was attached has its outcome written once by
// the next worker, which reattaches; one still running is adopted.
func TestKilledWorkersTurnIsAdoptedByTheNextWorker(t *testing.T) {
	for _, finishWhileAway := range []bool{false, true} {
		t.Run(fmt.Sprintf("finished_while_away=%v", finishWhileAway), func(t *testing.T) {
			e := reattachEnv(t, 60*time.Second)
			a := e.agent("survivor")
			p := e.startGatedTurn(a, "")
			plugins := e.pluginPids()
			if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			p.wait(t, reattachTimeout)
			if now := e.pluginPids(); len(now) != 1 || now[0] != plugins[0] {
				t.Fatalf("plugin processes %v after the worker's death, want %v still running", now, plugins)
			}
			if finishWhileAway {
				e.openGate()
				e.waitUntil(reattachTimeout, func() string { return fmt.Sprintf("runs %q", e.runLines()) }, func() bool { return len(e.runLines()) == 2 })
			}
			p2 := e.agentLoop(a, 5)
			e.waitWorkerAdopted(p2, 0)
			if !finishWhileAway {
				e.openGate()
			}
			e.stopAfterCompletion(a, p2, "Round 1 completed")
			e.assertOneCompletedRun(a)
		})
	}
}

// A worker that stays away past the reattach window finds nothing to
// reattach: the plugin closed the session, killed the CLI and exited
// within the window, and the next worker delivers the message again.
func TestPluginExitsAfterTheWindowAndTheMessageIsDeliveredAgain(t *testing.T) {
	e := reattachEnv(t, 2*time.Second)
	a := e.agent("late")
	p := e.startGatedTurn(a, "")
	others := e.procs.Alive() // the plugin, the CLI (sh and its sleep) and redis-server
	plugins := e.pluginPids()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, reattachTimeout)
	e.waitGone(plugins, 30*time.Second, "the plugin after its reattach window")
	var left []int
	for _, pid := range others {
		if pid != e.redis.Pid() && pid != p.cmd.Process.Pid {
			left = append(left, pid)
		}
	}
	e.waitGone(left, 10*time.Second, "the plugin's processes after its reattach window")

	e.openGate()
	p2 := e.agentLoop(a, 5)
	e.stopAfterCompletion(a, p2, "completed")
	lines := e.runLines()
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "start ") || !strings.HasPrefix(lines[1], "start ") || !strings.HasPrefix(lines[2], "end ") {
		t.Errorf("CLI runs %q, want the killed run's start, then one complete run", lines)
	}
	if n := len(e.prompts()); n != 2 {
		t.Errorf("the CLI got %d prompts, want 2 (the message delivered again)", n)
	}
	if got := e.getAgent(a.ID).RoundsCompleted; got != 1 {
		t.Errorf("rounds_completed %d, want 1", got)
	}
}

// privateBinaries copies the built tthost, its plugins and their checksum
// file to a directory of the test's own, which it may tamper with: the
// built binaries are shared by every test.
func (e *env) privateBinaries() string {
	e.t.Helper()
	dir := e.t.TempDir()
	plugins, err := filepath.Glob(filepath.Join(e.bin, "tthost-backend-*"))
	if err != nil || len(plugins) == 0 {
		e.t.Fatalf("no plugin binaries in %s (%v)", e.bin, err)
	}
	for _, src := range append([]string{filepath.Join(e.bin, "tthost"), filepath.Join(e.bin, pluginstore.ChecksumFile)}, plugins...) {
		fi, err := os.Stat(src)
		if err != nil {
			e.t.Fatal(err)
		}
		sdktest.CopyFile(e.t, src, filepath.Join(dir, filepath.Base(src)), fi.Mode().Perm())
	}
	return dir
}

// tamper replaces the binary at path with a modified copy (a new file
// renamed over it: a running process keeps its old image).
func tamper(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tampered"
	if err := os.WriteFile(tmp, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A plugin whose installed binary changed while no worker was attached is
// not reattached: the next worker refuses it and stops it with the CLI run
// it started, and the turn's message is not lost. The tampered binary
// cannot be launched either: the worker says so, puts the message back in
// the inbox and exits with an error; the CLI never runs again.
func TestTamperedPluginIsNotReattached(t *testing.T) {
	e := reattachEnv(t, 60*time.Second)
	bin := e.privateBinaries()
	a := e.agent("tampered")
	m := e.send(a.ID, "WAIT_GATE build the thing")
	p := e.tthost(bin, "agent-loop", a.Name, a.ID, "5")
	e.waitUntil(reattachTimeout, func() string { return "the CLI never reached the gate" }, func() bool { return len(e.gateWaiters()) == 1 })
	plugins := e.pluginPids()
	if len(plugins) != 1 {
		t.Fatalf("plugin processes %v, want the one-shot plugin", plugins)
	}
	var started []int // the plugin and the CLI run it started
	for _, pid := range e.procs.Alive() {
		if pid != e.redis.Pid() && pid != p.cmd.Process.Pid {
			started = append(started, pid)
		}
	}
	if len(started) < 2 {
		t.Fatalf("processes %v: want the plugin and its CLI run", started)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, reattachTimeout)
	if now := e.pluginPids(); len(now) != 1 || now[0] != plugins[0] {
		t.Fatalf("plugin processes %v after the worker's death, want %v still running", now, plugins)
	}

	tamper(t, filepath.Join(bin, "tthost-backend-oneshot"))
	p2 := e.tthost(bin, "agent-loop", a.Name, a.ID, "5")
	if !p2.out.WaitAfter(0, "refusing to reattach to a plugin", reattachTimeout) {
		t.Fatalf("the next worker did not refuse the tampered plugin:\n%s", p2.out.String())
	}
	if out := p2.out.String(); !strings.Contains(out, "the file was replaced behind the store's back") {
		t.Errorf("the refusal does not give the replaced binary as its reason:\n%s", out)
	}
	e.waitGone(started, 10*time.Second, "the refused plugin and its CLI run")
	// Nor can it launch the tampered binary for the message it finds in
	// flight: it says why, puts the message back and exits.
	if code := p2.wait(t, reattachTimeout); code == 0 {
		t.Errorf("the worker exited 0 without a backend to run its turn:\n%s", p2.out.String())
	}
	if out := p2.out.String(); !strings.Contains(out, "start the one-shot backend") || !strings.Contains(out, "does not match its recorded checksum: refusing to run it") {
		t.Errorf("the worker did not say it refused to launch the tampered plugin:\n%s", out)
	}
	if strings.Contains(p2.out.String(), "adopted the turn") {
		t.Errorf("the worker adopted a turn of the refused plugin:\n%s", p2.out.String())
	}
	if lines := e.runLines(); len(lines) != 1 || !strings.HasPrefix(lines[0], "start ") {
		t.Errorf("CLI runs %q, want the one killed run's start only", lines)
	}
	if n := len(e.prompts()); n != 1 {
		t.Errorf("the CLI got %d prompts, want 1", n)
	}
	msgs, _, err := e.store.PeekInbox(e.ctx(), a.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.inFlightLen(a.ID); len(msgs) != 1 || msgs[0].ID != m.ID || n != 0 {
		t.Errorf("inbox %v, %d in flight: want the message back in the inbox, once", msgs, n)
	}
	if left := e.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left after the worker stopped: %v", left)
	}
}

// installUpgrade replaces a plugin binary in bin with a new build (a
// modified copy) and records its checksum, as installing a new tthost with
// its plugins does: an upgrade, not tampering.
func installUpgrade(t *testing.T, bin, name string) {
	t.Helper()
	path := filepath.Join(bin, name)
	tamper(t, path)
	sum := hex.EncodeToString(sdktest.SHA256File(t, path))
	sums := filepath.Join(bin, pluginstore.ChecksumFile)
	b, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == name {
			line = sum + "  " + name
		}
		out = append(out, line)
	}
	if err := os.WriteFile(sums, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Upgrading tthost installs new builds of its plugins too. A worker
// restarted after such an upgrade reattaches to the plugin still running
// the old build (verified against the checksum of its own launch) instead
// of killing it: the running turn completes once on it.
func TestUpgradedPluginKeepsItsRunningTurn(t *testing.T) {
	e := reattachEnv(t, 60*time.Second)
	bin := e.privateBinaries()
	a := e.agent("upgraded")
	p := e.startGatedTurn(a, bin)
	plugins := e.pluginPids()
	if len(plugins) != 1 {
		t.Fatalf("plugin processes %v, want the one-shot plugin", plugins)
	}
	installUpgrade(t, bin, "tthost-backend-oneshot")

	mark := p.out.Len()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	e.waitWorkerAdopted(p, mark)
	if !strings.Contains(p.out.String(), "upgraded on disk while it ran") {
		t.Errorf("the worker did not say the plugin was upgraded:\n%s", p.out.String())
	}
	// The old build keeps the adopted session; the new build is launched
	// beside it for what needs the backend anew (its description, new
	// sessions).
	now := e.pluginPids()
	if !slices.Contains(now, plugins[0]) {
		t.Errorf("plugin processes %v after the restart, want the old build %v still running", now, plugins)
	}
	e.openGate()
	e.stopAfterCompletion(a, p, "Round 1 completed")
	e.assertOneCompletedRun(a)
	e.waitGone(now, 10*time.Second, "the plugins after the worker stopped")
}

// A worker that finds no reattach file (deleted while no worker ran) cannot
// know whether the dead worker's plugin still runs the turn: it waits for
// the dead worker's reattach window (recorded in its lease) before it
// delivers the message again, so the two runs never overlap.
func TestMissingReattachFileMakesTheNextWorkerWaitForTheWindow(t *testing.T) {
	e := reattachEnv(t, 2*time.Second)
	a := e.agent("forgetful")
	p := e.startGatedTurn(a, "")
	var first []int // the plugin and the CLI run
	for _, pid := range e.procs.Alive() {
		if pid != e.redis.Pid() && pid != p.cmd.Process.Pid {
			first = append(first, pid)
		}
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, reattachTimeout)
	files, _ := filepath.Glob(filepath.Join(e.dir, ".tt", "tthost", "reattach", "*.json"))
	if len(files) != 1 {
		t.Fatalf("reattach files %v, want the dead worker's", files)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	p2 := e.agentLoop(a, 5)
	if !p2.out.WaitAfter(0, "died without a reattach file", reattachTimeout) {
		t.Fatalf("the next worker did not wait for the window:\n%s", p2.out.String())
	}
	// The orphaned plugin ends the first run when its window passes, while
	// the new worker still waits; only then does the message run again.
	e.waitGone(first, 15*time.Second, "the orphaned plugin and its CLI run after the window")
	if n := len(e.prompts()); n != 1 {
		t.Fatalf("the CLI got %d prompts before the first run was gone, want 1", n)
	}
	e.openGate()
	e.waitEvent(a.ID, reattachTimeout, "the re-delivered turn's completion", func(ev *town.TownEvent) bool {
		return strings.Contains(ev.Message, "completed")
	})
	if lines := e.runLines(); len(lines) != 3 || !strings.HasPrefix(lines[0], "start ") || !strings.HasPrefix(lines[1], "start ") || !strings.HasPrefix(lines[2], "end ") {
		t.Errorf("CLI runs %q, want the killed run's start, then one complete run", lines)
	}
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p2.wait(t, reattachTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p2.out.String())
	}
}
