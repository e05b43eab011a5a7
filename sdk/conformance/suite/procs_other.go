//go:build !linux

package suite

import (
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/internal/procscan"
)

// waitAnyExit pauses briefly before the caller scans again: there is no
// exit event to wait on here.
func waitAnyExit(pids []int, marker string, timeout time.Duration) {
	procscan.WatchPids(pids, marker).WaitAny(timeout)
}

func hostAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// descendants needs /proc: elsewhere the suite finds a plugin's processes
// by its marker only.
func descendants(int) []int { return nil }

// parentOf needs /proc.
func parentOf(int) (int, bool) { return 0, false }
