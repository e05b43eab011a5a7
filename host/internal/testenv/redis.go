// Package testenv starts the real dependencies tthost's tests run against:
// a redis-server on a unix socket (or 127.0.0.1) in a private temp dir,
// which a test can kill and restart. Nothing is mocked; a missing
// dependency fails the test with how to install it.
package testenv

import (
	"os/exec"
	"testing"
)

// Redis is a redis-server started for one test (see RedisServer).
type Redis = RedisServer

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
// in a fresh temp dir, without persistence, waits until it accepts
// connections, and stops it (its whole process group) when the test ends.
// extraEnv is added to the server's environment (e.g. a process tracker's
// marker).
func StartRedis(t testing.TB, extraEnv ...string) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{Unix: true, Env: extraEnv})
}
