package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Redis Sentinel (redis-server --sentinel) started for one
// test on 127.0.0.1 (see StartSentinel).
type Sentinel struct {
	// Port is the sentinel's TCP port on 127.0.0.1; Addr is
	// "127.0.0.1:Port".
	Port int
	Addr string
	// Client talks to the sentinel itself (SENTINEL commands, its
	// pub/sub events); it is closed at cleanup.
	Client *redis.SentinelClient
	// Dir holds the sentinel's configuration file, which the sentinel
	// rewrites as it learns.
	Dir string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *lineLog
}

// StartSentinel starts a sentinel on a free port of 127.0.0.1 that
// monitors the master named masterName at masterAddr ("127.0.0.1:port")
// with a quorum of 1, waits until it accepts connections and stops it (its
// whole process group) when the test ends. conf are extra lines for its
// configuration file, after the monitor line (e.g. "requirepass PW" for
// the sentinel's own password, "sentinel auth-pass NAME PW" for the
// master's). A sentinel is redis-server in sentinel mode, so it needs only
// redis-server (RedisServerPath); a missing binary fails the test with how
// to install it. Client is made without a password: with requirepass in
// conf the caller makes its own.
func StartSentinel(t testing.TB, masterName, masterAddr string, conf ...string) *Sentinel {
	t.Helper()
	bin := RedisServerPath(t)
	dir := t.TempDir()
	s := &Sentinel{Port: freePort(t), Dir: dir}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	host, port, err := splitAddr(masterAddr)
	if err != nil {
		t.Fatalf("StartSentinel: master address %q: %v", masterAddr, err)
	}
	// A sentinel refuses to start without a writable configuration file:
	// it records what it learns (replicas, other sentinels, failovers).
	file := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile \"\"\nsentinel monitor %s %s %d 1\n",
		s.Port, dir, masterName, host, port)
	for _, line := range conf {
		text += line + "\n"
	}
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatalf("write sentinel.conf: %v", err)
	}

	cmd := exec.Command(bin, file, "--sentinel")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("sentinel stdout: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server --sentinel: %v", err)
	}
	s.cmd, s.exited, s.log = cmd, make(chan struct{}), &lineLog{}
	t.Cleanup(s.stop)
	ready := make(chan struct{})
	go func() {
		// A sentinel prints no "Ready to accept connections"; it prints
		// "+monitor master" once it listens and monitors the master.
		s.log.follow(stdout, "+monitor master ", ready)
		_ = cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-ready:
	case <-s.exited:
		t.Fatalf("redis-server --sentinel exited before it was ready:\n%s", s.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("redis-server --sentinel did not become ready within 30s:\n%s", s.log.String())
	}
	s.Client = redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = s.Client.Close() })
	return s
}

// Log returns what the sentinel printed.
func (s *Sentinel) Log() string { return s.log.String() }

// stop ends the sentinel at cleanup: SIGTERM, then SIGKILL after 5 s.
func (s *Sentinel) stop() {
	if isClosed(s.exited) {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}
