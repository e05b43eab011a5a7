package testenv

import (
	"bufio"
	"context"
	"io"
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
)

// RedisOptions configures StartRedisWith.
type RedisOptions struct {
	// TCP listens on 127.0.0.1 on a port that was free at start; Restart
	// listens on the same port again.
	TCP bool
	// Unix listens on a unix socket in the server's directory. With
	// neither TCP nor Unix set, the server listens on a unix socket.
	Unix bool
	// AppendOnly keeps an append-only file in the server's directory,
	// fsynced at every write (appendfsync always): a kill -9 loses no
	// acknowledged write, and Restart loads the data back.
	AppendOnly bool
	// Args are extra redis-server arguments, after tthost's own, e.g.
	// "--rename-command", "CONFIG", "" to play a managed Redis.
	Args []string
	// Env is added to the server's environment (e.g. a process
	// tracker's marker).
	Env []string
}

// RedisServer is a redis-server that a test can kill and restart: the
// fault-injection tests take Redis away under running workers and bring
// it back, with its data, on the same address.
type RedisServer struct {
	// Port is the TCP port (0 without TCP); Socket the unix socket path
	// ("" without one). URL is redis://127.0.0.1:Port when TCP is on,
	// else unix://Socket.
	Port   int
	Socket string
	URL    string
	// Client is connected to the server; it reconnects by itself after a
	// Restart. It is closed at cleanup.
	Client *redis.Client
	// Dir is the server's working directory (the append-only file).
	Dir string

	t    testing.TB
	opts RedisOptions
	bin  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	log     *lineLog
	stopped bool // the test is over: no restart
}

// StartRedisWith starts a private redis-server as opts says, waits until it
// accepts connections, and stops it (its whole process group) when the
// test ends.
func StartRedisWith(t testing.TB, opts RedisOptions) *RedisServer {
	t.Helper()
	if !opts.TCP && !opts.Unix {
		opts.Unix = true
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "ttrc")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	r := &RedisServer{t: t, opts: opts, bin: RedisServerPath(t), Dir: dir}
	if opts.TCP {
		r.Port = freePort(t)
		r.URL = "redis://127.0.0.1:" + strconv.Itoa(r.Port)
	}
	if opts.Unix {
		r.Socket = filepath.Join(dir, "redis.sock")
		if !opts.TCP {
			r.URL = "unix://" + r.Socket
		}
	}
	t.Cleanup(r.stop)
	r.start()
	if opts.TCP {
		r.Client = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port)})
	} else {
		r.Client = redis.NewClient(&redis.Options{Network: "unix", Addr: r.Socket})
	}
	t.Cleanup(func() { _ = r.Client.Close() })
	if err := r.Client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping redis-server: %v", err)
	}
	return r
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (r *RedisServer) args() []string {
	port := "0"
	if r.opts.TCP {
		port = strconv.Itoa(r.Port)
	}
	a := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", r.Dir, "--loglevel", "notice"}
	if r.opts.Unix {
		a = append(a, "--unixsocket", r.Socket, "--unixsocketperm", "700")
	}
	if r.opts.AppendOnly {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	return append(a, r.opts.Args...)
}

// start launches the server and waits until it is ready. The caller holds
// no lock; start takes it.
func (r *RedisServer) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, r.args()...)
	cmd.Env = append(os.Environ(), r.opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatalf("redis-server stdout: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	log := &lineLog{}
	ready := make(chan struct{})
	// The reader keeps draining so the server never blocks on a full pipe;
	// Wait must come after the pipe is read to its end.
	go func() {
		log.follow(stdout, "ready to accept connections", ready)
		_ = cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited, r.log = cmd, exited, log
	r.mu.Unlock()
	select {
	case <-ready:
	case <-exited:
		r.t.Fatalf("redis-server exited before it was ready:\n%s", log.String())
	case <-time.After(30 * time.Second):
		r.t.Fatalf("redis-server did not become ready within 30s:\n%s", log.String())
	}
}

// Pid is the running server's process id (0 when it is not running).
func (r *RedisServer) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil || isClosed(r.exited) {
		return 0
	}
	return r.cmd.Process.Pid
}

// Log returns what the current server process printed.
func (r *RedisServer) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		return ""
	}
	return r.log.String()
}

// Kill9 sends SIGKILL to the server's process group and waits until the
// server is gone: clients see their connections drop, as after a crash.
func (r *RedisServer) Kill9() {
	r.t.Helper()
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		r.t.Fatalf("redis-server %d did not exit within 10s of SIGKILL", cmd.Process.Pid)
	}
}

// Restart starts the server again on the same port and socket with the
// same directory, so with AppendOnly it comes back with its data. A server
// still running is killed first.
func (r *RedisServer) Restart() {
	r.t.Helper()
	r.Kill9()
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped {
		r.t.Fatalf("redis-server restarted after the test ended")
	}
	r.start()
	if err := r.Client.Ping(context.Background()).Err(); err != nil {
		r.t.Fatalf("ping redis-server after restart: %v\n%s", err, r.Log())
	}
}

// stop ends the server at cleanup: SIGTERM, then SIGKILL after 5 s.
func (r *RedisServer) stop() {
	r.mu.Lock()
	r.stopped = true
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

func isClosed(c chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// lineLog keeps a server's output for failure messages.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

// follow reads r to its end, closing ready at the first line that contains
// marker (case-insensitively).
func (l *lineLog) follow(r io.Reader, marker string, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	seen := false
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if len(l.lines) > 200 {
			l.lines = l.lines[len(l.lines)-200:]
		}
		l.mu.Unlock()
		if !seen && strings.Contains(strings.ToLower(line), marker) {
			seen = true
			close(ready)
		}
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
