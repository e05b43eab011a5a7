package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// long bounds every wait for something the worker must do; a worker under
// the race detector on a shared machine gets that long.
const long = 60 * time.Second

// settings are keys of tinytown.toml's [tthost] section. They are written
// as raw TOML so that keys config.TTHostConfig does not know yet reach the
// worker too (the config loader keeps unknown keys).
type settings map[string]any

// env is one test's town: a redis-server that can be killed and restarted,
// a town directory whose agents run record.sh, and the tthost binaries.
type env struct {
	t        *testing.T
	procs    *sdktest.Processes
	redis    *testenv.RedisServer
	rdb      *redis.Client
	store    *town.Store
	cfg      *config.Config
	settings settings
	dir      string // the town root
	faults   string // where record.sh records ($FAULTS_DIR)
	bin      string // tthost and its plugins
	tokens   int    // the last MSG-<n> handed out
	// changed wakes the harness's waits (coalescing): a write to any key
	// of the town, a write in the recording directory, a worker's exit.
	changed chan struct{}
}

// newEnv starts a test's town.
func newEnv(t *testing.T, s settings) *env {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatal("flock is not installed: record.sh proves overlaps with it. Install util-linux (sudo apt-get install util-linux).")
	}
	procs := sdktest.TrackProcesses(t)
	// Keyspace notifications from the start (and after every restart):
	// the harness waits on them, and the workers find them on.
	r := testenv.StartRedisWith(t, testenv.RedisOptions{TCP: true, AppendOnly: true, Env: []string{procs.Env()},
		Args: []string{"--notify-keyspace-events", "KEA"}})
	dir, err := os.MkdirTemp("", "ttfaults")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	faults := filepath.Join(dir, "faults")
	if err := os.MkdirAll(faults, 0o755); err != nil {
		t.Fatal(err)
	}
	record, err := filepath.Abs(filepath.Join("testdata", "record.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.New("faults")
	// Plugins stop with a killed tthost here, so a test's kill leaves
	// nothing behind; the reattach tests set a window of their own.
	cfg.TTHost.ReattachWindowSecs = 0
	cfg.DefaultCLI = "record"
	cfg.AgentCLIs["record"] = config.AgentCLI{Name: "record", Command: "sh " + record}
	cfg.Agent.IdleTimeoutSecs = 0
	cfg.Redis.URL = r.URL
	e := &env{t: t, procs: procs, redis: r, rdb: r.Client, store: town.New(r.Client, cfg.Name), cfg: cfg,
		settings: s, dir: dir, faults: faults, bin: testenv.Binaries(t), changed: make(chan struct{}, 1)}
	e.saveConfig()
	e.watchChanges()
	return e
}

// watchChanges feeds e.changed from the town's keyspace events (its own
// subscription, which go-redis renews after a restart of Redis; each
// renewal counts as a change, since writes may have been missed) and from
// the recording directory (inotify). Workers' exits feed it in agentLoop.
func (e *env) watchChanges() {
	testenv.Forward(e.t, e.changed,
		testenv.WatchKeyspace(e.t, e.rdb, e.store.Keys().Prefix()),
		testenv.WatchDir(e.t, e.faults))
}

func (e *env) signalChange() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// saveConfig writes tinytown.toml: the config plus e.settings in [tthost].
func (e *env) saveConfig() {
	e.t.Helper()
	var doc map[string]any
	if err := toml.Unmarshal(e.cfg.Encode(), &doc); err != nil {
		e.t.Fatalf("re-read the encoded config: %v", err)
	}
	tt, _ := doc["tthost"].(map[string]any)
	if tt == nil {
		tt = map[string]any{}
		doc["tthost"] = tt
	}
	for k, v := range e.settings {
		tt[k] = v
	}
	b, err := toml.Marshal(doc)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, config.FileName), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) ctx() context.Context { return context.Background() }

// agent registers an agent the way `tthost spawn` (and `tt spawn`) do.
func (e *env) agent(name string) *town.Agent {
	e.t.Helper()
	a, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: name, CLI: "record"})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// token returns the next message token, MSG-<n>.
func (e *env) token() string {
	e.tokens++
	return "MSG-" + strconv.Itoa(e.tokens)
}

// task builds a task message whose text starts with its token, so the
// token is in the prompt (which shows a message's first 120 characters).
func task(to, tok, rest string) *town.Message {
	return town.NewTask(town.SupervisorID, to, strings.TrimSpace(tok+" "+rest))
}

func mustRaw(t testing.TB, m *town.Message) string {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// send delivers a message as `tthost send` does (with a wake signal) and
// returns its token.
func (e *env) send(agentID, rest string) string {
	e.t.Helper()
	tok := e.token()
	if err := e.store.Send(e.ctx(), task(agentID, tok, rest)); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// pushRaw appends raw elements to a list as `tt` does: a plain RPUSH, no
// wake signal.
func (e *env) pushRaw(key string, raws ...string) {
	e.t.Helper()
	vals := make([]any, len(raws))
	for i, r := range raws {
		vals[i] = r
	}
	if err := e.rdb.RPush(e.ctx(), key, vals...).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// proc is a running tthost process.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan struct{}
	err  error
}

// agentLoop starts `tthost agent-loop NAME ID ROUNDS` in its own process
// group, against the test's Redis, with record.sh recording into e.faults.
// The group is killed at cleanup if the test did not see it exit, and its
// output is logged when the test failed.
func (e *env) agentLoop(a *town.Agent, rounds int) *proc {
	e.t.Helper()
	args := []string{"--town", e.dir, "agent-loop", a.Name, a.ID, strconv.Itoa(rounds)}
	cmd := exec.Command(filepath.Join(e.bin, "tthost"), args...)
	cmd.Env = append(e.procs.Environ(), "REDIS_URL="+e.redis.URL, "FAULTS_DIR="+e.faults)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: "agent-loop " + a.Name, cmd: cmd, out: &testenv.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start tthost: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done); e.signalChange() }()
	e.t.Cleanup(func() {
		if !p.exited() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("%s (pid %d) output:\n%s", p.name, cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(p.pid(), sig); err != nil {
		t.Fatalf("%s to %s: %v", sig, p.name, err)
	}
}

// waitExit waits up to timeout for the process to exit and returns its
// exit code (-1 when a signal killed it) and whether it exited.
func (p *proc) waitExit(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, false
	}
	return p.code(), true
}

// code is the exit code of an exited process; -1 when a signal killed it.
func (p *proc) code() int {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -2
	}
	return 0
}

// how describes how an exited process ended.
func (p *proc) how() string {
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", p.code())
}

// wait waits for the process to exit and returns its exit code, failing
// the test when it does not exit in time.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	code, ok := p.waitExit(timeout)
	if !ok {
		t.Fatalf("%s did not exit within %s; output:\n%s", p.name, timeout, p.out.String())
	}
	return code
}

// stop asks the agent to stop (what `tthost stop` does) and requires the
// worker to exit 0.
func (e *env) stop(p *proc, agentID string) {
	e.t.Helper()
	if p.exited() {
		e.t.Errorf("%s had already exited (%s) before it was asked to stop; output:\n%s", p.name, p.how(), p.out.String())
		return
	}
	if err := e.store.RequestStop(e.ctx(), agentID); err != nil {
		e.t.Fatal(err)
	}
	if code := p.wait(e.t, long); code != 0 {
		e.t.Errorf("%s exited %s after a stop request, want 0; output:\n%s", p.name, p.how(), p.out.String())
	}
}

// childrenOf lists the live processes whose parent is pid, from /proc
// (never by name across the machine).
func childrenOf(pid int) []int {
	dirs, _ := os.ReadDir("/proc")
	var out []int
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// plugin returns the pid of the worker's one-shot plugin process.
func (e *env) plugin(p *proc) int {
	e.t.Helper()
	var found []int
	for _, c := range childrenOf(p.pid()) {
		if strings.Contains(sdktest.Cmdline(c), "tthost-backend-oneshot") {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("want one tthost-backend-oneshot child of %s (pid %d), found %v", p.name, p.pid(), found)
	}
	return found[0]
}

// waitFor waits until cond holds or timeout passes; it fails the test
// naming what it waited for. cond is checked again at every change the
// harness sees (e.changed), not on a timer.
func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	if !e.poll(timeout, cond) {
		e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// poll reports whether cond held within timeout, checking it at the start
// and after every change (a key of the town written, a file in the
// recording directory written, a worker exited).
func (e *env) poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-e.changed:
		case <-deadline.C:
			return cond()
		}
	}
}

// holds checks cond for d, at the start and after every change, and
// returns "" when it held throughout, else when it first failed
// ("after 3.2s"). Between changes nothing it reads can change.
func (e *env) holds(d time.Duration, cond func() bool) string {
	start := time.Now()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		if !cond() {
			return fmt.Sprintf("after %s", time.Since(start).Round(100*time.Millisecond))
		}
		select {
		case <-e.changed:
		case <-end.C:
			return ""
		}
	}
}

// waitState waits until the agent's state field is want.
func (e *env) waitState(agentID string, want town.AgentState, p *proc) {
	e.t.Helper()
	ok := e.poll(long, func() bool {
		if p != nil && p.exited() {
			return true
		}
		s, err := e.store.AgentState(e.ctx(), agentID)
		return err == nil && s == want
	})
	switch {
	case p != nil && p.exited():
		e.t.Fatalf("%s exited (%s) while waiting for state %s; output:\n%s", p.name, p.how(), want, p.out.String())
	case !ok:
		s, _ := e.store.AgentState(e.ctx(), agentID)
		e.t.Fatalf("agent state is %s after %s, want %s", s, long, want)
	}
}

func (e *env) state(agentID string) town.AgentState {
	e.t.Helper()
	s, err := e.store.AgentState(e.ctx(), agentID)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) getAgent(id string) *town.Agent {
	e.t.Helper()
	a, err := e.store.GetAgent(e.ctx(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) inFlightLen(id string) int64 {
	e.t.Helper()
	n, err := e.store.InFlightLen(e.ctx(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// list returns a whole Redis list.
func (e *env) list(key string) []string {
	e.t.Helper()
	l, err := e.rdb.LRange(e.ctx(), key, 0, -1).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// inboxTokens lists the tokens of the messages in the agent's inbox, in
// delivery order.
func (e *env) inboxTokens(agentID string) []string {
	e.t.Helper()
	var out []string
	for _, raw := range e.list(e.store.Keys().Inbox(agentID)) {
		out = append(out, tokensIn(raw)...)
	}
	return out
}

// events returns the agent's event stream, oldest first.
func (e *env) events(agentID string) []*town.TownEvent {
	e.t.Helper()
	entries, err := e.store.ReadEvents(e.ctx(), e.store.Keys().EventsAgent(agentID), "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*town.TownEvent
	for _, en := range entries {
		if en.Event != nil {
			out = append(out, en.Event)
		}
	}
	return out
}

func (e *env) dumpEvents(agentID string) string {
	var b strings.Builder
	for _, ev := range e.events(agentID) {
		fmt.Fprintf(&b, "  %s [%s] %s\n", ev.Type, kindOf(ev), ev.Message)
	}
	return b.String()
}

// kindOf is the tthost detail kind of an event ("" for none): the loop
// writes it as scope "tthost.<kind>" and in the extra "tthost" object.
func kindOf(ev *town.TownEvent) string {
	if k, ok := strings.CutPrefix(ev.Scope, "tthost."); ok {
		return k
	}
	if raw, ok := ev.Extra["tthost"]; ok {
		// ParseEvent leaves it as json.RawMessage; Marshal returns that as is.
		b, err := json.Marshal(raw)
		var d struct{ Kind string }
		if err == nil && json.Unmarshal(b, &d) == nil {
			return d.Kind
		}
	}
	return ""
}

// eventsOfKind returns the agent's events of one detail kind.
func (e *env) eventsOfKind(agentID, kind string) []*town.TownEvent {
	var out []*town.TownEvent
	for _, ev := range e.events(agentID) {
		if kindOf(ev) == kind {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits until the agent's stream holds an event that match
// accepts, and returns it; it fails the test when none comes.
func (e *env) waitEvent(agentID string, timeout time.Duration, what string, match func(*town.TownEvent) bool) *town.TownEvent {
	e.t.Helper()
	ev := e.findEvent(agentID, timeout, match)
	if ev == nil {
		e.t.Fatalf("no %s event within %s; events:\n%s", what, timeout, e.dumpEvents(agentID))
	}
	return ev
}

// findEvent is waitEvent that returns nil when no event comes.
func (e *env) findEvent(agentID string, timeout time.Duration, match func(*town.TownEvent) bool) *town.TownEvent {
	e.t.Helper()
	var found *town.TownEvent
	e.poll(timeout, func() bool {
		for _, ev := range e.events(agentID) {
			if match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// waitOnlyRedis waits until no tracked process but the test's redis-server
// is alive and returns the command lines of any that remain. It waits on
// each process's exit (testenv.WaitExit: a pidfd, so grandchildren too).
func (e *env) waitOnlyRedis(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	var left []string
	for _, pid := range e.procs.Alive() {
		if pid != e.redis.Pid() && !testenv.WaitExit(pid, time.Until(deadline)) {
			left = append(left, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
	}
	return left
}

// assertNoProcessLeft requires that, once every worker has exited, no
// process the test started is alive but Redis: no plugin, no CLI, no sleep.
func (e *env) assertNoProcessLeft() {
	e.t.Helper()
	if left := e.waitOnlyRedis(15 * time.Second); len(left) > 0 {
		e.t.Errorf("processes left running:\n  %s", strings.Join(left, "\n  "))
	}
}

// assertNothingInFlight requires the agents' in-flight lists to be empty.
func (e *env) assertNothingInFlight(agentIDs ...string) {
	e.t.Helper()
	for _, id := range agentIDs {
		if l := e.list(e.store.Keys().InFlight(id)); len(l) > 0 {
			e.t.Errorf("%d message(s) left in flight for %s: %q", len(l), id, l)
		}
	}
}

// assertClean is every test's ending: no run overlapped another, nothing
// is in flight, and no process is left.
func (e *env) assertClean(agentIDs ...string) {
	e.t.Helper()
	e.assertNoOverlaps()
	e.assertNothingInFlight(agentIDs...)
	e.assertNoProcessLeft()
}

// sortedKeys is for stable failure messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
