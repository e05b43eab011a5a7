package townredis

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/sdk/sdktest"
)

func writePid(t *testing.T, town string, pid int) string {
	t.Helper()
	p := filepath.Join(town, ".tt", "redis.pid")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStopRefusesAProcessThatIsNotRedis(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	town, _ := newTown(t)
	cmd := exec.Command("sleep", "60")
	cmd.Env = procs.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		// newTown's Stop runs next; it must not meet this pidfile's pid.
		os.Remove(filepath.Join(town, ".tt", "redis.pid"))
	})
	pidFile := writePid(t, town, cmd.Process.Pid)

	err := Stop(ctxFor(t), town)
	if err == nil || !strings.Contains(err.Error(), "is not the town's Redis") || !strings.Contains(err.Error(), "sleep 60") {
		t.Fatalf("Stop = %v, want a refusal naming the process", err)
	}
	if !sdktest.ProcessAlive(cmd.Process.Pid) {
		t.Fatal("Stop signalled a process that is not Redis")
	}
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatal("Stop removed the pidfile of a live stranger")
	}
	if st, err := Status(town); err != nil || st.Running || !st.Stale {
		t.Fatalf("Status = %+v, %v; want a stale pidfile", st, err)
	}
}

func TestStopWithADeadPidRemovesThePidfile(t *testing.T) {
	town, _ := newTown(t)
	cmd := exec.Command("true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pidFile := writePid(t, town, cmd.Process.Pid) // reaped: nobody has this pid now
	if err := Stop(ctxFor(t), town); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale pidfile remains: %v", err)
	}
}

func TestStopRejectsAGarbledPidfile(t *testing.T) {
	town, _ := newTown(t)
	p := filepath.Join(town, ".tt", "redis.pid")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("not a pid"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	if err := Stop(ctxFor(t), town); err == nil || !strings.Contains(err.Error(), "does not hold a pid") {
		t.Fatalf("Stop = %v", err)
	}
}

// TestServeEmbeddedCleansUpOnCancel runs the embedded server in this
// process: cancel stops it, and it removes its socket and pidfile.
func TestServeEmbeddedCleansUpOnCancel(t *testing.T) {
	dir, err := os.MkdirTemp("", "tt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, pidFile := filepath.Join(dir, "r.sock"), filepath.Join(dir, "r.pid")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ServeEmbedded(ctx, sock, pidFile) }()
	if err := waitReady(ctxFor(t), sock, 10*time.Second, nil, false); err != nil {
		t.Fatal(err)
	}
	if pid, _ := readPidfile(pidFile); pid != os.Getpid() {
		t.Fatalf("pidfile holds %d, want %d", pid, os.Getpid())
	}
	if err := ServeEmbedded(ctx, sock, pidFile); err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Fatalf("a second ServeEmbedded on the socket: %v, want a refusal", err)
	}

	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer c.Close()
	blocked := make(chan error, 1)
	go func() { blocked <- c.BLPop(context.Background(), 0, "never").Err() }()
	// A blocked client must not keep the server from stopping.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeEmbedded: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeEmbedded did not return after cancel")
	}
	<-blocked
	for _, p := range []string{sock, pidFile} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains: %v", p, err)
		}
	}
}

func TestParseEmbeddedArgs(t *testing.T) {
	sock, pid, err := ParseEmbeddedArgs([]string{"redis-embedded", EmbeddedFlag, "--unixsocket", "/t/r.sock", "--pidfile", "/t/r.pid"})
	if err != nil || sock != "/t/r.sock" || pid != "/t/r.pid" {
		t.Fatalf("= %q %q %v", sock, pid, err)
	}
	// What Ensure appends is what the parser reads.
	sock, pid, err = ParseEmbeddedArgs(embeddedArgs("/a.sock", "/a.pid"))
	if err != nil || sock != "/a.sock" || pid != "/a.pid" {
		t.Fatalf("round trip = %q %q %v", sock, pid, err)
	}
	for _, bad := range [][]string{
		nil,
		{"--unixsocket", "/s", "--pidfile", "/p"},
		{EmbeddedFlag, "--unixsocket"},
		{EmbeddedFlag, "--unixsocket", "/s"},
		{EmbeddedFlag, "--unixsocket", "/s", "--pidfile", "/p", "--port", "1"},
	} {
		if _, _, err := ParseEmbeddedArgs(bad); err == nil {
			t.Errorf("ParseEmbeddedArgs(%q) accepted", bad)
		}
	}
}

func TestConnectChecksTheServerVersion(t *testing.T) {
	// A server on loopback that claims an old version.
	m := miniredis.RunT(t)
	m.Server().SetPreHook(func(c *server.Peer, cmd string, args ...string) bool {
		if cmd == "INFO" {
			c.WriteBulk("# Server\r\nredis_version:6.2.14\r\n")
			return true
		}
		return false
	})
	_, err := Connect(ctxFor(t), "redis://:secret@"+m.Addr())
	if err == nil || !strings.Contains(err.Error(), "version 6.2.14") || !strings.Contains(err.Error(), "7.0 or newer") {
		t.Fatalf("Connect to 6.2 = %v, want a version error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows the password: %v", err)
	}

	m.Server().SetPreHook(func(c *server.Peer, cmd string, args ...string) bool {
		if cmd == "INFO" {
			c.WriteBulk("# Server\r\nredis_version:7.0.15\r\n")
			return true
		}
		return false
	})
	c, err := Connect(ctxFor(t), "redis://"+m.Addr())
	if err != nil {
		t.Fatalf("Connect to 7.0.15: %v", err)
	}
	c.Close()

	// No version at all (as the embedded server answers) is accepted.
	m.Server().SetPreHook(nil)
	c, err = Connect(ctxFor(t), "redis://"+m.Addr())
	if err != nil {
		t.Fatalf("Connect without a reported version: %v", err)
	}
	c.Close()
}

func TestConnectErrorsSayWhatToDo(t *testing.T) {
	_, err := Connect(ctxFor(t), "http://nope")
	if err == nil || !strings.Contains(err.Error(), "bad Redis URL") {
		t.Fatalf("Connect(http://) = %v", err)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	ep := Endpoint{URL: "unix://" + sock, Source: SourceTownSocket}
	_, err = ep.Connect(ctxFor(t))
	for _, want := range []string{"does not answer PING", "start the town's Redis", "town socket"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Connect error lacks %q: %v", want, err)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	cases := []struct {
		v    string
		want bool
	}{{"7.0", true}, {"7.0.15", true}, {"8.2.1", true}, {"6.2.14", false}, {"10.0", true}, {"7", true}, {"6", false}}
	for _, tc := range cases {
		if got := versionAtLeast(tc.v, MinVersion); got != tc.want {
			t.Errorf("versionAtLeast(%q) = %v", tc.v, got)
		}
	}
}
