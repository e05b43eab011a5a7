//go:build !linux

package suite

import (
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/internal/procscan"
)

// waitAnyExit has no exit event to wait on here: it pauses briefly before
// the caller scans again.
func waitAnyExit(pids []int, marker string, timeout time.Duration) {
	time.Sleep(min(timeout, 20*time.Millisecond))
}

type exitWatch struct{ pids []int }

func watchExits(pids []int, marker string) *exitWatch {
	w := &exitWatch{}
	for _, pid := range pids {
		if carries(pid, marker) {
			w.pids = append(w.pids, pid)
		}
	}
	return w
}

func (w *exitWatch) running() []int {
	var out []int
	for _, pid := range w.pids {
		if syscall.Kill(pid, 0) == nil && !procscan.Zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func (w *exitWatch) close() {}

func hostAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// descendants needs /proc: elsewhere the suite finds a plugin's processes
// by its marker only.
func descendants(int) []int { return nil }

// parentOf needs /proc.
func parentOf(int) (int, bool) { return 0, false }
