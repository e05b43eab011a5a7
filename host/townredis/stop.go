package townredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StopTimeout is how long Stop waits after SIGTERM before SIGKILL when ctx
// has no sooner deadline: redis-server writes its data on the way out.
const StopTimeout = 10 * time.Second

// ServerStatus describes the town-private server named by .tt/redis.pid.
type ServerStatus struct {
	// Running is true when the pidfile names a live process that is a Redis
	// server (redis-server or the embedded one).
	Running bool
	Kind    string // KindRedisServer or KindEmbedded when Running
	Pid     int
	// SocketPath is the server's socket from its command line ("" if unknown).
	SocketPath string
	PidFile    string
	// Stale is true when the pidfile names a process that is gone or is not
	// a Redis server.
	Stale bool
}

// Status reports on the town-private server without touching it.
func Status(townDir string) (ServerStatus, error) {
	f, err := filesOf(townDir)
	if err != nil {
		return ServerStatus{}, err
	}
	st := ServerStatus{PidFile: f.pid}
	pid, err := readPidfile(f.pid)
	if err != nil || pid == 0 {
		return st, err
	}
	st.Pid = pid
	kind, sock, ok := identify(pid)
	if !ok {
		st.Stale = true
		return st, nil
	}
	st.Running, st.Kind, st.SocketPath = true, kind, sock
	return st, nil
}

// Stop stops the town-private server Ensure started: it reads
// .tt/redis.pid, checks that the process is alive and is redis-server or
// the embedded server, sends SIGTERM, waits for the exit (bounded by ctx
// and StopTimeout), sends SIGKILL if it must, and removes a socket and
// pidfile the server left behind. With no server running it does nothing.
// It never looks processes up by name.
func Stop(ctx context.Context, townDir string) error {
	f, err := filesOf(townDir)
	if err != nil {
		return err
	}
	pid, err := readPidfile(f.pid)
	if err != nil {
		return err
	}
	if pid == 0 {
		return nil
	}
	// A pidfd pins the process: the check below and the signals address the
	// same process even if the pid were reused meanwhile.
	pfd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		defer unix.Close(pfd)
	case errors.Is(err, unix.ESRCH):
		removeIfPid(f.pid, pid)
		return nil
	case errors.Is(err, unix.ENOSYS):
		pfd = -1 // an old kernel: fall back to plain pids
	default:
		return fmt.Errorf("open pid %d: %w", pid, err)
	}

	_, sock, ok := identify(pid)
	if !ok && processAlive(pid) && cmdline(pid) == "" {
		// An exiting process has no command line any more (its memory is
		// gone before it is a zombie): give it a moment to finish.
		waitExit(ctx, pfd, pid, 2*time.Second)
	}
	if !ok {
		if !processAlive(pid) {
			removeIfPid(f.pid, pid)
			return nil
		}
		return fmt.Errorf("pid %d in %s is not the town's Redis (its command line is %q): not stopping it; remove the pidfile if it is stale",
			pid, f.pid, cmdline(pid))
	}

	if err := signal(pfd, pid, unix.SIGTERM); err != nil {
		return err
	}
	grace := StopTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < grace {
		grace = time.Until(dl)
	}
	if !waitExit(ctx, pfd, pid, grace) {
		if err := signal(pfd, pid, unix.SIGKILL); err != nil {
			return err
		}
		// SIGKILL cannot be ignored; the bound only guards against a stuck
		// kernel task, so it does not depend on ctx.
		if !waitExit(context.Background(), pfd, pid, 5*time.Second) {
			return fmt.Errorf("the town's Redis (pid %d) did not exit after SIGKILL", pid)
		}
	}
	// After a clean exit the server removed these itself; after SIGKILL
	// they are stale.
	if sock != "" && probeSocket(sock) == socketStale {
		os.Remove(sock)
	}
	removeIfPid(f.pid, pid)
	return nil
}

func signal(pfd, pid int, sig unix.Signal) error {
	var err error
	if pfd >= 0 {
		err = unix.PidfdSendSignal(pfd, sig, nil, 0)
	} else {
		err = unix.Kill(pid, sig)
	}
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	return nil
}

// waitExit waits up to d for the process to exit. A pidfd becomes readable
// when the process exits, so this waits on that event; the wait is cut
// into short slices only to notice ctx. Without pidfd support it polls.
func waitExit(ctx context.Context, pfd, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	backoff := 5 * time.Millisecond
	for {
		if pfd < 0 && !processAlive(pid) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return pfd < 0 && !processAlive(pid)
		}
		if pfd >= 0 {
			fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)+1)
			if err == nil && n > 0 {
				return true
			}
			continue
		}
		time.Sleep(min(backoff, left)) // no pidfd: polling is all there is
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// identify says whether pid is a live Redis server of ours, from its
// command line: redis-server (which rewrites it to "redis-server
// unixsocket:PATH") or a process carrying EmbeddedFlag.
func identify(pid int) (kind, socket string, ok bool) {
	if !processAlive(pid) {
		return "", "", false
	}
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(raw) == 0 {
		return "", "", false
	}
	args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
	for i, a := range args {
		if a == EmbeddedFlag {
			if s, _, err := ParseEmbeddedArgs(args[i:]); err == nil {
				socket = s
			}
			return KindEmbedded, socket, true
		}
	}
	first := strings.Fields(args[0])
	if len(first) == 0 || !strings.Contains(filepath.Base(first[0]), "redis-server") {
		return "", "", false
	}
	for i, a := range args {
		if a == "--unixsocket" && i+1 < len(args) {
			socket = args[i+1]
		}
	}
	// The process title redis-server sets: "{title} {listen-addr} {server-mode}".
	if _, after, found := strings.Cut(strings.Join(args, " "), "unixsocket:"); found && socket == "" {
		socket = strings.TrimSpace(after)
		if i := strings.LastIndex(socket, " ["); i >= 0 && strings.HasSuffix(socket, "]") {
			socket = socket[:i]
		}
	}
	return KindRedisServer, socket, true
}

// processAlive reports whether pid is a live process (zombies are dead).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || (stat[i+2] != 'Z' && stat[i+2] != 'X')
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// removeIfPid removes a pidfile that still names pid.
func removeIfPid(path string, pid int) {
	if p, _ := readPidfile(path); p == pid {
		os.Remove(path)
	}
}
