package e2e

import (
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

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// env is one test's town: a real redis-server, a town directory, and the
// tthost binaries.
type env struct {
	t     *testing.T
	procs *sdktest.Processes
	redis *testenv.Redis
	store *town.Store
	cfg   *config.Config
	dir   string // town root
	work  string // where the test CLI records what it saw
	bin   string // directory of tthost and its plugins
	// extraEnv is added to the environment of tthost processes.
	extraEnv []string
	// changed fires on every write to the town's keys and every change in
	// work (see changes); nil until a test asks for it.
	changed <-chan struct{}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	r := testenv.StartRedis(t, procs.Env())
	dir, err := os.MkdirTemp("", "tte2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.New("e2e")
	cfg.DefaultCLI = "test"
	cfg.AgentCLIs["test"] = config.AgentCLI{Name: "test", Command: "sh " + testdataPath(t, "cli.sh")}
	cfg.Agent.IdleTimeoutSecs = 0
	// Plugins stop with a killed tthost here, so a test's kill leaves
	// nothing behind; the reattach tests set a window of their own.
	cfg.TTHost.ReattachWindowSecs = 0
	e := &env{t: t, procs: procs, redis: r, cfg: cfg, dir: dir, work: work, bin: testenv.Binaries(t)}
	e.saveConfig()
	e.store = town.New(r.Client, cfg.Name)
	return e
}

func testdataPath(t testing.TB, name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) saveConfig() {
	e.t.Helper()
	if err := e.cfg.Save(filepath.Join(e.dir, config.FileName)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) ctx() context.Context { return e.t.Context() }

// agent registers an agent the way `tthost spawn` (and `tt spawn`) do.
func (e *env) agent(name string) *town.Agent {
	e.t.Helper()
	a, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: name, CLI: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) send(agentID, text string) *town.Message {
	e.t.Helper()
	m := town.NewTask(town.SupervisorID, agentID, text)
	if err := e.store.Send(e.ctx(), m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// proc is a running tthost process.
type proc struct {
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan struct{}
	err  error
}

// tthost starts the tthost binary from binDir (or bin when given) against
// the test's Redis, in its own process group; the group is killed at
// cleanup if the test did not wait for it.
func (e *env) tthost(bin string, args ...string) *proc {
	e.t.Helper()
	if bin == "" {
		bin = e.bin
	}
	cmd := exec.Command(filepath.Join(bin, "tthost"), append([]string{"--town", e.dir}, args...)...)
	cmd.Env = append(append(e.procs.Environ(), "REDIS_URL="+e.redis.URL, "E2E_DIR="+e.work), e.extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, out: &testenv.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start tthost: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("tthost %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// agentLoop starts `tthost agent-loop` for the agent.
func (e *env) agentLoop(a *town.Agent, rounds int) *proc {
	return e.tthost("", "agent-loop", a.Name, a.ID, strconv.Itoa(rounds))
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("tthost did not exit within %s; output:\n%s", timeout, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// waitEvent follows the agent's event stream from the beginning until an
// entry satisfies match, and returns it. It waits on Redis (XREAD BLOCK),
// not on a timer.
func (e *env) waitEvent(agentID string, timeout time.Duration, what string, match func(*town.TownEvent) bool) *town.TownEvent {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx(), timeout)
	defer cancel()
	var found *town.TownEvent
	errFound := errors.New("found")
	err := e.store.FollowEvents(ctx, e.store.Keys().EventsAgent(agentID), "", func(en town.EventEntry) error {
		if en.Event != nil && match(en.Event) {
			found = en.Event
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		e.t.Fatalf("no %s event within %s (%v); events:\n%s", what, timeout, err, e.dumpEvents(agentID))
	}
	return found
}

func (e *env) waitEventType(agentID string, typ town.EventType, timeout time.Duration) *town.TownEvent {
	e.t.Helper()
	return e.waitEvent(agentID, timeout, string(typ), func(ev *town.TownEvent) bool { return ev.Type == typ })
}

func (e *env) dumpEvents(agentID string) string {
	entries, err := e.store.ReadEvents(context.Background(), e.store.Keys().EventsAgent(agentID), "", 0)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, en := range entries {
		if en.Event != nil {
			fmt.Fprintf(&b, "  %s %s: %s\n", en.ID, en.Event.Type, en.Event.Message)
		}
	}
	return b.String()
}

func (e *env) getAgent(id string) *town.Agent {
	e.t.Helper()
	a, err := e.store.GetAgent(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) prompts() []string {
	e.t.Helper()
	var out []string
	for i := 1; ; i++ {
		b, err := os.ReadFile(filepath.Join(e.work, fmt.Sprintf("prompt-%d.txt", i)))
		if err != nil {
			return out
		}
		out = append(out, string(b))
	}
}

func (e *env) inboxLen(id string) int64 {
	n, err := e.store.InboxLen(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) inFlightLen(id string) int64 {
	n, err := e.store.InFlightLen(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) activity(id string) string {
	lines, err := e.store.Activity(context.Background(), id, 10)
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// waitOnlyRedis waits until no tracked process but the test's redis-server
// is alive and returns the command lines of any that remain. Polling /proc
// is the only way to see a process that is not our child exit.
func (e *env) waitOnlyRedis(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, pid := range e.procs.Alive() {
			if pid != e.redis.Pid() {
				left = append(left, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSleeping waits until the test CLI reports (as streamed output) that
// it is sleeping: the turn is really running, past its start.
func (e *env) waitSleeping(agentID string) {
	e.t.Helper()
	e.waitEvent(agentID, long, "CLI output 'sleeping'", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentAssistantDelta && strings.Contains(ev.Message, "sleeping")
	})
}
