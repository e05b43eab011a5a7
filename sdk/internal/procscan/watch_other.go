//go:build !linux

package procscan

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Watch has no exit events here: it remembers pids and asks whether they
// still run (see watch_linux.go).
type Watch struct{ pids []int }

// WatchByEnv watches the live processes carrying entry.
func WatchByEnv(entry string) *Watch { return WatchPids(FindByEnv(entry), entry) }

// WatchPids watches those of pids that still carry entry.
func WatchPids(pids []int, entry string) *Watch {
	w := &Watch{}
	for _, pid := range pids {
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err == nil && bytes.Contains(env, []byte(entry)) {
			w.pids = append(w.pids, pid)
		}
	}
	return w
}

// Len is how many processes are watched.
func (w *Watch) Len() int { return len(w.pids) }

// Running lists the watched processes that still run.
func (w *Watch) Running() []int {
	var out []int
	for _, pid := range w.pids {
		if syscall.Kill(pid, 0) == nil && !Zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// WaitAny pauses briefly: there is no exit event to wait on.
func (w *Watch) WaitAny(timeout time.Duration) { time.Sleep(min(timeout, 20*time.Millisecond)) }

// WaitAll returns at once: Process.Close's kill is all there is.
func (w *Watch) WaitAll(time.Duration) {}

// Close forgets the pids.
func (w *Watch) Close() { w.pids = nil }
