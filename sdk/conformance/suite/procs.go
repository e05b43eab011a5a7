package suite

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk/internal/procscan"
)

// waitGone waits until no process carrying marker is alive, except those
// skip accepts, for up to timeout, and returns the ones left. It waits on
// process exits as events (pidfds) where the system has them.
func waitGone(marker string, skip func(int) bool, timeout time.Duration) []int {
	if skip == nil {
		skip = func(int) bool { return false }
	}
	deadline := time.Now().Add(timeout)
	for {
		pids := slices.DeleteFunc(procscan.FindByEnv(marker), skip)
		left := time.Until(deadline)
		if len(pids) == 0 || left <= 0 {
			return pids
		}
		waitAnyExit(pids, marker, left)
	}
}

// killTagged SIGKILLs every process carrying marker and describes the ones
// it found ("" when there were none).
func killTagged(marker string) string {
	pids := procscan.FindByEnv(marker)
	if len(pids) == 0 {
		return ""
	}
	desc := describePids(pids)
	procscan.KillByEnv(marker, 2*time.Second)
	return desc
}

// describePids names processes for messages: "pid 12 (sleep 3600)".
func describePids(pids []int) string {
	parts := make([]string, len(pids))
	for i, pid := range pids {
		parts[i] = fmt.Sprintf("pid %d (%s)", pid, cmdline(pid))
	}
	return strings.Join(parts, ", ")
}

func cmdline(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return "?"
	}
	// One line, whatever the arguments hold (a shell script, say).
	return clip(strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")), " "), 100)
}

// carries reports whether pid's environment holds the marker entry, so a
// pid reused by a stranger is never waited for or blamed.
func carries(pid int, marker string) bool {
	return slices.Contains(environ(pid), marker)
}

// environ is the environment pid was started with, as KEY=VALUE entries,
// or nil when it cannot be read (the process is gone or a stranger's).
func environ(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}
