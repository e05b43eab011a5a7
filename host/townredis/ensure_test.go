package townredis

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

const (
	embeddedPkg = "github.com/tthost/tthost/host/townredis/internal/embeddedmain"
	ensurePkg   = "github.com/tthost/tthost/host/townredis/internal/ensuremain"
)

// newTown makes a town directory with a short path (t.TempDir can exceed
// the 108-byte socket limit) and stops its Redis when the test ends. Call
// it after TrackProcesses, so the stop runs before the tracker's check.
func newTown(t *testing.T) (dir string, ep Endpoint) {
	t.Helper()
	// The tracker checks for leftover processes before this returns; the
	// real redis-server must be installed for these tests to mean anything.
	testenv.RedisServerPath(t)
	dir, err := os.MkdirTemp("", "tt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := Stop(ctx, dir); err != nil {
			t.Errorf("Stop at cleanup: %v", err)
		}
	})
	ep, err = Resolve(config.New("t"), dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return dir, ep
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ep Endpoint) *redis.Client {
	t.Helper()
	c, err := ep.Connect(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func embeddedOpts(t *testing.T, procs *sdktest.Processes) EnsureOptions {
	return EnsureOptions{
		RedisServer: config.RedisServerEmbedded,
		Executable:  sdktest.Build(t, embeddedPkg, "embeddedmain"),
		Env:         []string{procs.Env()},
	}
}

func TestEnsureStartsRedisServerAndDataSurvivesARestart(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	ctx := ctxFor(t)
	opts := EnsureOptions{RedisServer: config.RedisServerReal, Env: []string{procs.Env()}}

	s, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindRedisServer || !s.Started || s.Pid == 0 || s.Notice != "" {
		t.Fatalf("Ensure = %+v, want a started redis-server with a pid and no notice", s)
	}
	if fi, err := os.Stat(ep.SocketPath); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket %s: %v, mode %v; want 0700", ep.SocketPath, err, fi.Mode().Perm())
	}
	if got := procs.Alive(); len(got) != 1 || got[0] != s.Pid {
		t.Fatalf("tagged processes = %v, want only the server %d", got, s.Pid)
	}
	c := connect(t, ep)
	if err := c.RPush(ctx, "tt:t:inbox:a", "m1", "m2").Err(); err != nil {
		t.Fatal(err)
	}
	expectNotifications(ctx, t, c)

	again, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Started || again.Pid != s.Pid || again.Kind != KindRedisServer {
		t.Fatalf("second Ensure = %+v, want the running server %d reused", again, s.Pid)
	}

	st, err := Status(town)
	if err != nil || !st.Running || st.Kind != KindRedisServer || st.Pid != s.Pid || st.SocketPath != ep.SocketPath {
		t.Fatalf("Status = %+v, %v; want redis-server %d on %s", st, err, s.Pid, ep.SocketPath)
	}

	if err := Stop(ctx, town); err != nil {
		t.Fatal(err)
	}
	if sdktest.ProcessAlive(s.Pid) {
		t.Fatalf("redis-server %d still runs after Stop", s.Pid)
	}
	for _, p := range []string{ep.SocketPath, filepath.Join(town, ".tt", "redis.pid")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains after Stop (%v)", p, err)
		}
	}
	if st, _ := Status(town); st.Running {
		t.Fatalf("Status after Stop = %+v", st)
	}
	if err := Stop(ctx, town); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}

	restarted, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !restarted.Started || restarted.Pid == s.Pid {
		t.Fatalf("Ensure after Stop = %+v, want a new server", restarted)
	}
	c2 := connect(t, ep)
	got, err := c2.LRange(ctx, "tt:t:inbox:a", 0, -1).Result()
	if err != nil || strings.Join(got, ",") != "m1,m2" {
		t.Fatalf("after restart the inbox is %q (%v), want m1,m2 from the append-only file", got, err)
	}
	if _, err := os.Stat(filepath.Join(town, ".tt", "appendonlydir")); err != nil {
		t.Fatalf("no append-only files in .tt/: %v", err)
	}
}

func TestEnsureRecoversAStaleSocket(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	ctx := ctxFor(t)
	opts := EnsureOptions{Env: []string{procs.Env()}}

	first, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A crash leaves the socket file and the pidfile behind.
	pfd, err := unix.PidfdOpen(first.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	if err := unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	// Wait for the exit itself: the process drops out of /proc listings
	// before it has closed its socket.
	if !waitExit(ctx, pfd, first.Pid, 5*time.Second) {
		t.Fatalf("killed server %d did not exit", first.Pid)
	}
	if probeSocket(ep.SocketPath) != socketStale {
		t.Fatalf("expected a stale socket at %s after SIGKILL", ep.SocketPath)
	}
	if st, err := Status(town); err != nil || st.Running || !st.Stale || st.Pid != first.Pid {
		t.Fatalf("Status after the crash = %+v, %v; want a stale pidfile for %d", st, err, first.Pid)
	}

	s, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Started || s.Pid == first.Pid {
		t.Fatalf("Ensure = %+v, want a new server in place of the stale socket", s)
	}
	if err := connect(t, ep).Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureRemovesAStaleSocketFileNobodyOwns(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	if err := os.MkdirAll(filepath.Dir(ep.SocketPath), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: ep.SocketPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()

	s, err := Ensure(ctxFor(t), ep, town, EnsureOptions{Env: []string{procs.Env()}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Started {
		t.Fatalf("Ensure = %+v, want a started server", s)
	}
}

func TestEnsureLeavesAFileThatIsNotASocket(t *testing.T) {
	town, ep := newTown(t)
	if err := os.MkdirAll(filepath.Dir(ep.SocketPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ep.SocketPath, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(ctxFor(t), ep, town, EnsureOptions{})
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Ensure = %v, want an error about the file", err)
	}
	if b, _ := os.ReadFile(ep.SocketPath); string(b) != "mine" {
		t.Fatal("Ensure touched a regular file at the socket path")
	}
}

func TestEnsureEmbedded(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	ctx := ctxFor(t)
	opts := embeddedOpts(t, procs)

	s, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindEmbedded || !s.Started || s.Pid == 0 || s.Notice != EmbeddedNotice {
		t.Fatalf("Ensure = %+v, want a started embedded server with the notice", s)
	}
	if !strings.Contains(s.Notice, "lost when it stops") || !strings.Contains(s.Notice, "install redis-server") {
		t.Fatalf("notice does not say what it means: %q", s.Notice)
	}
	if fi, err := os.Stat(ep.SocketPath); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket %s: %v, want mode 0700", ep.SocketPath, err)
	}
	if pid, _ := readPidfile(filepath.Join(town, ".tt", "redis.pid")); pid != s.Pid {
		t.Fatalf("pidfile holds %d, want %d", pid, s.Pid)
	}
	// It is detached: its own session, not our process group.
	if sid, _ := unix.Getsid(s.Pid); sid != s.Pid {
		t.Fatalf("embedded server session = %d, want its own (%d)", sid, s.Pid)
	}
	if _, err := os.Stat(filepath.Join(town, ".tt", "logs", "redis-embedded.log")); err != nil {
		t.Fatalf("no embedded server log: %v", err)
	}

	c := connect(t, ep)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	expectNotifications(ctx, t, c)
	again, err := Ensure(ctx, ep, town, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Started || again.Pid != s.Pid || again.Kind != KindEmbedded || again.Notice != EmbeddedNotice {
		t.Fatalf("second Ensure = %+v, want the running embedded server reused", again)
	}
	if st, _ := Status(town); !st.Running || st.Kind != KindEmbedded || st.SocketPath != ep.SocketPath {
		t.Fatalf("Status = %+v", st)
	}

	if err := Stop(ctx, town); err != nil {
		t.Fatal(err)
	}
	if left := procs.WaitGone(5 * time.Second); len(left) != 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	if _, err := os.Stat(ep.SocketPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the embedded server left its socket: %v", err)
	}
	if _, err := os.Stat(filepath.Join(town, ".tt", "redis.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the embedded server left its pidfile: %v", err)
	}
}

func TestEnsureAutoFallsBackToEmbeddedWithoutRedisServer(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	exe := sdktest.Build(t, embeddedPkg, "embeddedmain")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())

	s, err := Ensure(ctxFor(t), ep, town, EnsureOptions{Executable: exe, Env: []string{procs.Env()}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindEmbedded || s.Notice == "" {
		t.Fatalf("Ensure = %+v, want the embedded server", s)
	}
}

func TestEnsureSaysHowToInstallRedisServer(t *testing.T) {
	town, ep := newTown(t)
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())

	_, err := Ensure(ctxFor(t), ep, town, EnsureOptions{RedisServer: config.RedisServerReal})
	if err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Fatalf("Ensure(redis-server) = %v, want how to install it", err)
	}
	_, err = Ensure(ctxFor(t), ep, town, EnsureOptions{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Fatalf("Ensure(auto, no embedded executable) = %v, want how to install redis-server", err)
	}
	if _, err := Ensure(ctxFor(t), ep, town, EnsureOptions{RedisServer: "valkey"}); err == nil {
		t.Fatal("Ensure accepted an unknown mode")
	}
}

func TestEnsureExternalOnlyConnects(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	r := testenv.StartRedis(t, procs.Env())
	town := t.TempDir()
	ep, err := Resolve(config.New("t"), town, func(k string) string {
		if k == "REDIS_URL" {
			return r.URL
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Ensure(ctxFor(t), ep, town, EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindExternal || s.Started || s.Pid != 0 {
		t.Fatalf("Ensure = %+v, want the external server left alone", s)
	}
	if _, err := os.Stat(filepath.Join(town, ".tt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Ensure made .tt/ for an external Redis")
	}

	bad := Endpoint{URL: "unix://" + filepath.Join(town, "nobody.sock"), Source: SourceEnv}
	_, err = Ensure(ctxFor(t), bad, town, EnsureOptions{})
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), "does not answer PING") {
		t.Fatalf("Ensure(unreachable) = %v, want an error naming REDIS_URL", err)
	}
}

func TestConcurrentEnsureInOneProcessStartsOneServer(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	ctx := ctxFor(t)

	const n = 4
	var wg sync.WaitGroup
	results := make([]Server, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = Ensure(ctx, ep, town, EnsureOptions{Env: []string{procs.Env()}})
		})
	}
	wg.Wait()
	started := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v", i, errs[i])
		}
		if results[i].Pid != results[0].Pid || results[i].Pid == 0 {
			t.Fatalf("Ensure results disagree on the server: %+v", results)
		}
		if results[i].Started {
			started++
		}
	}
	if started != 1 {
		t.Fatalf("%d calls started a server, want 1: %+v", started, results)
	}
	if alive := procs.Alive(); len(alive) != 1 {
		t.Fatalf("%d tagged processes alive, want 1 server: %v", len(alive), alive)
	}
}

func TestConcurrentEnsureFromTwoProcessesStartsOneServer(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	ensure := sdktest.Build(t, ensurePkg, "ensuremain")
	embedded := sdktest.Build(t, embeddedPkg, "embeddedmain")

	cmds := make([]*exec.Cmd, 2)
	outs := make([]*strings.Builder, len(cmds))
	for i := range cmds {
		cmd := exec.Command(ensure, town, config.RedisServerEmbedded, embedded)
		cmd.Env = procs.Environ()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		outs[i] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		cmds[i] = cmd
	}
	// Start both before waiting for either, so they race for the lock.
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// A no-op once it exited; the group is its own (Setpgid).
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		})
	}
	errs := make(chan error, len(cmds))
	for _, cmd := range cmds {
		go func() { errs <- cmd.Wait() }()
	}
	for range cmds {
		if err := <-errs; err != nil {
			t.Fatalf("ensuremain: %v\n%s\n%s", err, outs[0], outs[1])
		}
	}

	started := 0
	var pids []int
	for _, out := range outs {
		kind, pid, s := parseEnsureOutput(t, out.String())
		if kind != KindEmbedded {
			t.Fatalf("ensuremain got a %s server, want embedded", kind)
		}
		pids = append(pids, pid)
		if s {
			started++
		}
	}
	if started != 1 || pids[0] != pids[1] || pids[0] == 0 {
		t.Fatalf("two processes: started %d servers, pids %v; want one server for both", started, pids)
	}
	// The server outlived the process that started it.
	if alive := procs.Alive(); len(alive) != 1 || alive[0] != pids[0] {
		t.Fatalf("tagged processes alive = %v, want only the server %d", alive, pids[0])
	}
	if err := connect(t, ep).Ping(ctxFor(t)).Err(); err != nil {
		t.Fatal(err)
	}
}

// parseEnsureOutput reads ensuremain's "KIND PID STARTED" line.
func parseEnsureOutput(t *testing.T, out string) (kind string, pid int, started bool) {
	t.Helper()
	f := strings.Fields(out)
	if len(f) != 3 {
		t.Fatalf("ensuremain printed %q", out)
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return f[0], pid, f[2] == "true"
}

func TestEnsureRefusesARedisServerOlderThan7(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, ep := newTown(t)
	opts := embeddedOpts(t, procs) // builds with go: before PATH changes
	bin := t.TempDir()
	fake := "#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64 build=1'\n"
	if err := os.WriteFile(filepath.Join(bin, "redis-server"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	t.Setenv("HOME", t.TempDir())

	_, err := Ensure(ctxFor(t), ep, town, EnsureOptions{RedisServer: config.RedisServerReal, Env: []string{procs.Env()}})
	if err == nil || !strings.Contains(err.Error(), "version 6.2.14") {
		t.Fatalf("Ensure with redis-server 6.2 = %v, want a version error", err)
	}
	opts.RedisServer = config.RedisServerAuto
	s, err := Ensure(ctxFor(t), ep, town, opts)
	if err != nil || s.Kind != KindEmbedded {
		t.Fatalf("auto with an old redis-server = %+v, %v; want the embedded server", s, err)
	}
}

// expectNotifications checks that a server tthost started has the keyspace
// notifications workers need, and delivers them (host/notify's probe).
func expectNotifications(ctx context.Context, t *testing.T, c *redis.Client) {
	t.Helper()
	st, err := notify.Ensure(ctx, c, town.NewKeys("t"), notify.EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != notify.ModeKeyspace || st.Enabled || st.Flags != "g$lhK" {
		t.Fatalf("notifications on the started server: %+v, want keyspace with flags g$lhK from the start", st)
	}
}
