package plugin_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tthost/tthost/sdk"
	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
	"github.com/tthost/tthost/sdk/sdktest"
)

// waitLogHas waits until the file at path holds want at least n times,
// waking on writes in its directory (inotify).
func waitLogHas(t *testing.T, path, want string, n int, timeout time.Duration) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE|unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatalf("watch: %v", err)
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), want) >= n {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s never held %q %d times; it holds:\n%s", path, want, n, b)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
		_, _ = unix.Read(fd, buf)
	}
}

// pidfdExited reports whether the process behind fd exited, waiting up to
// timeout (0: just look).
func pidfdExited(t *testing.T, fd int, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		return n > 0
	}
}

// TestPluginOutlivesItsHostForTheWindow kills a host that launched a
// plugin with a reattach window: the plugin and its session's child keep
// running, a new connection reattaches, and when that host's stream breaks
// too the plugin detaches again, waits out the window, closes the session
// and exits, leaving no process behind.
func TestPluginOutlivesItsHostForTheWindow(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "tthost-backend-echo")
	logPath := filepath.Join(t.TempDir(), "detached.log")

	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(procs.Environ(),
		fakeHostEnv+"="+bin,
		sdk.ReattachWindowEnv+"=1500",
		sdk.DetachedLogEnv+"="+logPath,
	)
	host.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatalf("start the fake host: %v", err)
	}
	hostDone := make(chan struct{})
	go func() { _ = host.Wait(); close(hostDone) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-host.Process.Pid, syscall.SIGKILL)
		<-hostDone
	})

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the fake host did not report the plugin: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "PLUGIN" {
		t.Fatalf("unexpected fake host line %q", line)
	}
	pid, _ := strconv.Atoi(f[1])
	network, addr, session := f[2], f[3], f[4]
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of the plugin %d: %v", pid, err)
	}
	defer unix.Close(pidfd)
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }) // its own group

	// The host dies without a word.
	if err := syscall.Kill(host.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-hostDone
	waitLogHas(t, logPath, "plugin detached", 1, 30*time.Second)
	if pidfdExited(t, pidfd, 0) {
		t.Fatal("the plugin exited when its host died despite the reattach window")
	}
	if alive := procs.Alive(); len(alive) < 2 {
		t.Fatalf("want the plugin and its session's child alive after the host died, got %v", alive)
	}

	// A new host reattaches over the plugin's socket.
	conn, err := grpc.NewClient("unix://"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if network != "unix" || err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer conn.Close()
	b := backendv1.NewBackendClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Describe(ctx, &backendv1.DescribeRequest{}); err != nil {
		t.Fatalf("describe after reattaching: %v", err)
	}
	waitLogHas(t, logPath, "host reattached", 1, 30*time.Second)
	sctx, breakStream := context.WithCancel(ctx)
	events, err := b.Events(sctx, &backendv1.EventsRequest{SessionId: session, AllowGap: true})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := events.Recv(); err != nil || e.GetSeq() != 1 {
		t.Fatalf("the session's events after reattaching: %v, %v; want seq 1 still buffered", e, err)
	}
	// The new host goes away too: its stream breaks, the plugin detaches
	// again after the resubscribe grace, and the window runs out.
	breakStream()
	waitLogHas(t, logPath, "plugin detached", 2, 30*time.Second)
	if !pidfdExited(t, pidfd, 30*time.Second) {
		t.Fatal("the plugin outlived its reattach window")
	}
	if left := procs.WaitGone(10 * time.Second); len(left) > 0 {
		t.Fatalf("processes left after the window expired: %v", left)
	}
	waitLogHas(t, logPath, "plugin stopped", 1, 10*time.Second)
	logText, _ := os.ReadFile(logPath)
	t.Logf("detached log:\n%s", logText)
	for _, want := range []string{"reattach window expired", "echo session closed"} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("detached log lacks %q:\n%s", want, logText)
		}
	}
}
