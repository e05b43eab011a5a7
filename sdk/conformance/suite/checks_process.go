package suite

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/procscan"
)

const (
	// closeSettle is how long processes a session killed may take to be
	// gone after CloseSession returned: a SIGKILLed process dies as soon as
	// the kernel schedules it, but not synchronously.
	closeSettle = time.Second

	ruleStopOrderly = `when the host stops the plugin, the SDK closes every session immediately, so CLI processes do not outlive their plugin (docs/protocol.md, "Process model")`
	ruleHostDeath   = `a plugin watches its host and exits when the host dies, closing its sessions first; nothing is left behind (docs/protocol.md, "Process model")`
)

// checkNoProcessAfterClose closes a session during a turn and an idle one
// after a turn, and looks for what they left.
func checkNoProcessAfterClose(r *run) {
	r.launch()
	var reported []int
	skip := func(pid int) bool { return r.isPlugin(pid) || slices.Contains(reported, pid) }
	closed := func(s *stream, mode sdk.CloseMode, during string) {
		r.close(s, mode)
		if left := waitGone(r.marker, skip, closeSettle); len(left) > 0 {
			reported = append(reported, left...)
			r.errorf(ruleClose, "%s: %s still alive %v after CloseSession(%s) %s returned: %s",
				s.name, plural(len(left), "process was", "processes were"), closeSettle, modeName(mode), during, describePids(left))
		}
	}

	s := r.open(r.sessionConfig())
	r.waitReady(s)
	r.startLong(s)
	ran := len(r.alive()) > 0
	closed(s, sdk.CloseImmediate, "during a turn")

	s2, _ := r.openReady()
	r.runTurn(s2, "conformance before graceful close "+r.nonce())
	ran = ran || len(r.alive()) > 0
	closed(s2, sdk.CloseGraceful, "of an idle session")
	if !ran {
		r.unprovenf("no process of the sessions ran (none carried the run's marker or was below the plugin), so there was nothing to see stopped")
	}
}

// processWait bounds the wait for a turn's CLI process to appear.
const processWait = 5 * time.Second

// awaitProcess polls until others lists a process, or (when s is given)
// cond holds for its events, for up to processWait. No event announces a
// new process of a stranger, hence the poll.
func awaitProcess(others func() []int, cond func([]sdk.Event) bool, s *stream) bool {
	deadline := time.Now().Add(processWait)
	backoff := 2 * time.Millisecond
	for {
		if len(others()) > 0 {
			return true
		}
		if s != nil && cond(s.snapshot()) {
			return false
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// checkNoProcessAfterHostCancel stops the plugin the way the host does,
// with one session idle and one running a turn.
func checkNoProcessAfterHostCancel(r *run) {
	p := r.launch()
	idle, _ := r.openReady()
	r.runTurn(idle, "conformance idle "+r.nonce())
	busy, _ := r.openReady()
	id := r.startLong(busy)

	before := r.alive()
	w := procscan.WatchPids(before, r.marker)
	defer w.Close()
	outlived := make(chan []int, 1)
	go func() {
		<-p.Done()
		outlived <- w.Running()
	}()
	start := time.Now()
	if err := p.Stop(stopGrace); err != nil {
		r.errorf(ruleStopOrderly, "Plugin.Stop: %v", err)
	}
	took := time.Since(start)
	if left := <-outlived; len(left) > 0 {
		r.errorf(ruleStopOrderly, "%s still running when the plugin exited; the host had to kill them: %s",
			plural(len(left), "process it started was", "processes it started were"), describePids(left))
	}
	evs := r.waitExited(busy)
	if i := find(evs, sdk.EventTurnCompleted, id); i >= 0 && evs[i].Completed.Status != sdk.StatusInterrupted {
		r.errorf(ruleStopOrderly, "%s: the turn running when the plugin was stopped ended %s; want interrupted", busy.name, evs[i].Completed.Status)
	}
	r.waitExited(idle)
	if left := waitGone(r.marker, nil, closeSettle); len(left) > 0 {
		r.errorf(ruleStopOrderly, "%s still alive after Plugin.Stop returned: %s", plural(len(left), "process was", "processes were"), describePids(left))
	}
	r.notef("the plugin stopped in %v, with %d process(es) of its sessions", took.Round(time.Millisecond), len(before))
}

// checkNoProcessAfterHostKill runs a stand-in host (this executable again)
// that launches the plugin and starts a long turn, SIGKILLs it, and waits
// for the plugin and everything it started to go.
func checkNoProcessAfterHostKill(r *run) {
	exe, err := os.Executable()
	if err != nil {
		r.fatalf("", "cannot find this executable to run the stand-in host: %v", err)
	}
	cfg, err := json.Marshal(hostConfig{
		Plugin:    r.target.Path,
		Checksum:  hex.EncodeToString(r.target.Checksum),
		PluginEnv: r.pluginEnv(),
		Session:   r.sessionConfig(),
		Prompt:    r.target.Prompts.Long,
		Timeout:   r.opts.Timeout,
	})
	if err != nil {
		r.fatalf("", "stand-in host config: %v", err)
	}
	host := exec.Command(exe)
	host.Env = append(withoutEnv(os.Environ(), standInHostEnv), standInHostEnv+"="+string(cfg))
	host.Dir = r.dir
	host.Stderr = r.log
	host.SysProcAttr = hostAttr()
	host.WaitDelay = 2 * time.Second
	stdout, err := host.StdoutPipe()
	if err != nil {
		r.fatalf("", "stand-in host: %v", err)
	}
	if err := host.Start(); err != nil {
		r.fatalf("", "starting the stand-in host %s: %v", exe, err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = host.Process.Kill()
			_ = host.Wait()
		}
	}()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	ctx, cancel := r.stepCtx()
	defer cancel()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		r.fatalf("", "the stand-in host did not get the plugin to a running turn within %v", r.opts.Timeout)
	}
	pidText, ok := strings.CutPrefix(line, hostReady+" ")
	pluginPid, err := strconv.Atoi(pidText)
	if !ok || err != nil {
		r.fatalf("", "the stand-in host could not get the plugin to a running turn: %s", strings.TrimPrefix(line, hostFailed+" "))
	}
	if !slices.Contains(procscan.FindByEnv(r.marker), pluginPid) {
		r.fatalf("", "the plugin (pid %d) does not carry the environment its host gave it (%s): the suite cannot follow its processes", pluginPid, MarkerEnv)
	}
	cliRuns := func() []int {
		return slices.DeleteFunc(procscan.FindByEnv(r.marker), func(pid int) bool { return pid == pluginPid })
	}
	awaitProcess(cliRuns, nil, nil)
	before := procscan.FindByEnv(r.marker)

	start := time.Now()
	_ = host.Process.Kill()
	_ = host.Wait()
	killed = true
	if left := waitGone(r.marker, nil, r.opts.ExitBound); len(left) > 0 {
		desc := describePids(left)
		if slices.Contains(left, pluginPid) {
			desc = fmt.Sprintf("the plugin itself (pid %d) and %s", pluginPid, desc)
		}
		r.errorf(ruleHostDeath, "%s still alive %v after the host was killed during a turn (killed now): %s",
			plural(len(left), "process was", "processes were"), r.opts.ExitBound, desc)
		killTagged(r.marker)
		return
	}
	r.notef("the plugin and its %d other process(es) were gone %v after the host was killed",
		len(before)-1, time.Since(start).Round(time.Millisecond))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
