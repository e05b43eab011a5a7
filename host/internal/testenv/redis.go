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
	// Client is connected to the server and closed at cleanup.
	Client *redis.Client
	// Pid is the server's process id.
	Pid int
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
	bin := RedisServerPath(t)
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "ttr")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin,
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--loglevel", "notice",
	)
	cmd.Env = append(os.Environ(), extraEnv...)
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
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
	})

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

	client := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping redis-server: %v", err)
	}
	return &Redis{Socket: sock, URL: "unix://" + sock, Client: client, Pid: cmd.Process.Pid}
}
