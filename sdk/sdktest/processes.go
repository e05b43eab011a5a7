// Package sdktest holds test helpers shared by tthost's own tests and by
// plugin authors: building plugin binaries once per test run, and proving
// that a test left no process behind.
package sdktest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/internal/procscan"
)

// MarkerEnv is the environment variable that tags every process a test
// starts. Children inherit it, so a scan of /proc finds every descendant,
// including daemons that detached from their parent.
const MarkerEnv = "TTHOST_TEST_MARKER"

// Processes tags the processes a test starts and checks that none is left
// when the test ends.
type Processes struct {
	marker string
}

// TrackProcesses returns a tracker for t. Add Env() to the environment of
// every process the test starts. When t ends, the tracker waits briefly for
// tagged processes to exit, then fails the test naming any that remain and
// kills them by PID (they are ours: they carry this test's marker).
func TrackProcesses(t testing.TB) *Processes {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("marker: %v", err)
	}
	p := &Processes{marker: hex.EncodeToString(b[:])}
	t.Cleanup(func() { p.assertNoneLeft(t) })
	return p
}

// Env returns the KEY=VALUE pair to add to a child's environment.
func (p *Processes) Env() string { return MarkerEnv + "=" + p.marker }

// Marker returns the marker value.
func (p *Processes) Marker() string { return p.marker }

// Environ returns os.Environ() plus the marker, and (under -race, where
// Build makes race binaries) GORACE=atexit_sleep_ms=0 so the race runtime
// does not add a second to every child's exit.
func (p *Processes) Environ() []string {
	env := append(os.Environ(), p.Env())
	if raceEnabled {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// Alive lists the PIDs of live processes carrying the marker.
func (p *Processes) Alive() []int { return FindByEnv(MarkerEnv + "=" + p.marker) }

// WaitGone waits until no process carries the marker, up to timeout, and
// returns the ones still alive.
func (p *Processes) WaitGone(timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	backoff := 5 * time.Millisecond
	for {
		alive := p.Alive()
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(backoff) // polling /proc: there is no event for "a stranger exited"
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

func (p *Processes) assertNoneLeft(t testing.TB) {
	// Processes get a moment to finish exiting after the test's own cleanup
	// (a killed process group is reaped asynchronously).
	left := p.WaitGone(5 * time.Second)
	if len(left) == 0 {
		return
	}
	var desc []string
	for _, pid := range left {
		desc = append(desc, fmt.Sprintf("pid %d: %s", pid, Cmdline(pid)))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	t.Errorf("%d process(es) left running after the test (killed now):\n  %s", len(left), strings.Join(desc, "\n  "))
}

// FindByEnv lists the PIDs of live processes whose environment contains the
// exact KEY=VALUE entry. Zombies and unreadable processes are skipped.
func FindByEnv(entry string) []int { return procscan.FindByEnv(entry) }

// Cmdline returns a process's command line for messages.
func Cmdline(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// ProcessAlive reports whether pid names a live, non-zombie process.
func ProcessAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	return !procscan.Zombie(pid)
}
