// Package testenv starts the real dependencies tthost's tests run against:
// a redis-server on a unix socket in the test's temp dir. Nothing is mocked;
// a missing dependency fails the test with how to install it.
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server started for one test.
type Redis struct {
	// Socket is the unix socket path; URL is unix://<Socket>.
	Socket string
	URL    string
	// Client is connected to the server and closed at cleanup. It
	// reconnects by itself after Restart.
	Client *redis.Client
	// Pid is the server's process id (the current one after Restart).
	Pid int

	bin, dir string
	opts     RedisOptions
	waited   chan struct{} // closed when the current process has exited
}

// RedisOptions tune StartRedisWith.
type RedisOptions struct {
	// Args are extra redis-server arguments, after tthost's own, e.g.
	// "--rename-command", "CONFIG", "" to play a managed Redis.
	Args []string
	// Env is added to the server's environment (e.g. a process
	// tracker's marker).
	Env []string
}

// RedisServerPath returns the redis-server binary or fails the test with
// how to install it.
func RedisServerPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed: the tests run against a real Redis. " +
			"Install it with `sudo apt-get install redis-server` (or run `make test`, which installs it).")
	}
	return p
}

// StartRedis starts a private redis-server listening only on a unix socket
// in a fresh temp dir, waits until it accepts connections, and stops it
// (its whole process group) when the test ends. extraEnv is added to the
// server's environment (e.g. a process tracker's marker).
func StartRedis(t testing.TB, extraEnv ...string) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{Env: extraEnv})
}

// StartRedisWith is StartRedis with extra arguments.
func StartRedisWith(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	r := &Redis{bin: RedisServerPath(t), opts: opts}
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "ttr")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	r.dir = dir
	r.Socket = filepath.Join(dir, "redis.sock")
	r.URL = "unix://" + r.Socket
	t.Cleanup(func() { r.stop(syscall.SIGTERM) })
	r.start(t)

	r.Client = redis.NewClient(&redis.Options{Network: "unix", Addr: r.Socket})
	t.Cleanup(func() { _ = r.Client.Close() })
	if err := r.Client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping redis-server: %v", err)
	}
	return r
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// is gone. Its data is lost (the test server keeps none on disk); the
// socket file stays behind, stale, as after a crash.
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	r.stop(syscall.SIGKILL)
}

// Restart starts the server again on the same socket with the same
// arguments, after Kill, and waits until it accepts connections.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.stop(syscall.SIGKILL)
	r.start(t)
}

// stop signals the current process group and waits for it; a server that
// ignores SIGTERM for 5 s is killed.
func (r *Redis) stop(sig syscall.Signal) {
	if r.waited == nil {
		return
	}
	_ = syscall.Kill(-r.Pid, sig)
	select {
	case <-r.waited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-r.Pid, syscall.SIGKILL)
		<-r.waited
	}
	r.waited = nil
}

func (r *Redis) start(t testing.TB) {
	t.Helper()
	args := append([]string{
		"--port", "0",
		"--unixsocket", r.Socket,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--loglevel", "notice",
	}, r.opts.Args...)
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), r.opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("redis-server stdout: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	r.Pid, r.waited = cmd.Process.Pid, waited

	// redis-server logs "... ready to accept connections ..." once it listens.
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var seen []string
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(strings.ToLower(line), "ready to accept connections") {
				ready <- nil
				// Keep draining so the server never blocks on a full pipe.
				for sc.Scan() {
				}
				return
			}
			seen = append(seen, line)
		}
		ready <- fmt.Errorf("redis-server exited before it was ready:\n%s", strings.Join(seen, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("redis-server did not become ready within 15s")
	}
}
