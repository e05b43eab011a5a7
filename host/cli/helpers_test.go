package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

const testTownName = "clitest"

// testTown is one test's town: a directory with tinytown.toml and,
// unless the test runs its own, a real redis-server given to commands as
// REDIS_URL.
type testTown struct {
	t     *testing.T
	procs *sdktest.Processes
	redis *testenv.Redis // nil without REDIS_URL
	dir   string         // town root (symlinks resolved)
	store *town.Store
	// env is what the commands' Getenv sees; procEnv is added to the
	// environment of processes they start; exe is their tthost executable.
	env     map[string]string
	procEnv []string
	exe     string
}

// newTestTown makes a town on a fresh redis-server.
func newTestTown(t *testing.T) *testTown {
	t.Helper()
	tt := newBareTown(t)
	tt.redis = testenv.StartRedis(t, tt.procs.Env())
	tt.env["REDIS_URL"] = tt.redis.URL
	tt.store = town.New(tt.redis.Client, testTownName)
	tt.writeConfig(config.New(testTownName))
	return tt
}

// newBareTown is an empty town directory with no Redis and no config.
func newBareTown(t *testing.T) *testTown {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	// Short: the town socket .tt/redis.sock must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "ttc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	return &testTown{t: t, procs: procs, dir: dir, env: map[string]string{}, procEnv: []string{procs.Env()}}
}

func (tt *testTown) writeConfig(cfg *config.Config) {
	tt.t.Helper()
	if err := cfg.Save(filepath.Join(tt.dir, config.FileName)); err != nil {
		tt.t.Fatal(err)
	}
}

func (tt *testTown) ctx() context.Context { return tt.t.Context() }

// result is one command's outcome, as Main would report it.
type result struct {
	out, errOut string
	err         error
	code        int
}

// run runs tthost --town DIR args... in this process, as Main does, with
// buffers for IO.
func (tt *testTown) run(args ...string) result {
	tt.t.Helper()
	return tt.runWith(nil, nil, args...)
}

// runAs runs a command as an agent would (TINYTOWN_AGENT_ID set).
func (tt *testTown) runAs(agentID string, args ...string) result {
	tt.t.Helper()
	return tt.runWith(map[string]string{agentIDEnv: agentID}, nil, args...)
}

// runWith runs a command with extra Getenv values and, when out is not
// nil, that writer as stdout.
func (tt *testTown) runWith(env map[string]string, out *syncBuffer, args ...string) result {
	tt.t.Helper()
	if out == nil {
		out = &syncBuffer{}
	}
	var errOut syncBuffer
	f := NewFactory(&IOStreams{In: strings.NewReader(""), Out: out, ErrOut: &errOut})
	f.Getenv = func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return tt.env[k]
	}
	f.Executable = func() (string, error) {
		if tt.exe == "" {
			return "", errors.New("this test gives commands no tthost executable")
		}
		return tt.exe, nil
	}
	f.Env = tt.procEnv
	defer f.Close()
	root := NewRootCmd(f)
	root.SetArgs(append([]string{"--town", tt.dir}, args...))
	root.SetIn(f.IO.In)
	root.SetOut(out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(tt.ctx())
	return result{out: out.String(), errOut: errOut.String(), err: err, code: exitCode(err)}
}

// exitCode is Main's mapping of an error to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		return 2
	}
	return 1
}

// ok fails the test unless the command succeeded, and returns its stdout.
func (r result) ok(t *testing.T) string {
	t.Helper()
	if r.err != nil {
		t.Fatalf("command failed: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.out, r.errOut)
	}
	return r.out
}

// fails fails the test unless the command failed with an error containing
// every one of want, and returns the error text.
func (r result) fails(t *testing.T, want ...string) string {
	t.Helper()
	if r.err == nil {
		t.Fatalf("command succeeded, want an error containing %q\nstdout:\n%s", want, r.out)
	}
	for _, w := range want {
		if !strings.Contains(r.err.Error(), w) {
			t.Errorf("error %q does not contain %q", r.err, w)
		}
	}
	return r.err.Error()
}

func mustContain(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("output does not contain %q:\n%s", w, text)
		}
	}
}

func mustNotContain(t *testing.T, text string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(text, w) {
			t.Errorf("output contains %q:\n%s", w, text)
		}
	}
}

// agent registers an agent as tt spawn does, without a worker.
func (tt *testTown) agent(name string) *town.Agent {
	tt.t.Helper()
	a, err := tt.store.CreateAgent(tt.ctx(), town.AgentSpec{Name: name, CLI: "claude"})
	if err != nil {
		tt.t.Fatal(err)
	}
	return a
}

func (tt *testTown) getAgent(id string) *town.Agent {
	tt.t.Helper()
	a, err := tt.store.GetAgent(tt.ctx(), id)
	if err != nil {
		tt.t.Fatal(err)
	}
	return a
}

func (tt *testTown) setState(id string, s town.AgentState) {
	tt.t.Helper()
	if err := tt.store.SetAgentState(tt.ctx(), id, s); err != nil {
		tt.t.Fatal(err)
	}
}

// list returns a Redis list's elements.
func (tt *testTown) list(key string) []string {
	tt.t.Helper()
	l, err := tt.redis.Client.LRange(tt.ctx(), key, 0, -1).Result()
	if err != nil {
		tt.t.Fatal(err)
	}
	return l
}

// events reads every entry of a stream.
func (tt *testTown) events(stream string) []*town.TownEvent {
	tt.t.Helper()
	entries, err := tt.store.ReadEvents(tt.ctx(), stream, "", 0)
	if err != nil {
		tt.t.Fatal(err)
	}
	var evs []*town.TownEvent
	for _, e := range entries {
		if e.Event == nil {
			tt.t.Fatalf("unreadable event %s: %v", e.ID, e.Err)
		}
		evs = append(evs, e.Event)
	}
	return evs
}

// syncBuffer is a bytes.Buffer safe for a command writing in one goroutine
// while the test reads in another; written is closed at the first write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	once    sync.Once
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		s.once.Do(func() { close(s.written) })
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits for ch or fails the test after d (a bound on a broken
// test, not a synchronisation delay).
func waitFor(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// fileExists reports whether path exists (any type).
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
