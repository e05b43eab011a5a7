package suite

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/internal/procscan"
)

// waitAnyExit waits until one of pids exits, or timeout passes: a poll on
// their pidfds, so the exit is an event.
func waitAnyExit(pids []int, marker string, timeout time.Duration) {
	w := procscan.WatchPids(pids, marker)
	defer w.Close()
	if w.Len() < len(pids) {
		return // one is gone already (or cannot be watched): rescan
	}
	w.WaitAny(timeout)
}

// hostAttr makes the stand-in host die with the suite.
func hostAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// descendants lists the live processes below root in the process tree
// (children, their children, ...), found by their parent in /proc/PID/stat:
// what a plugin started, even without its environment, as long as it was
// not reparented.
func descendants(root int) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentOf returns the parent of a live, non-zombie process.
func parentOf(pid int) (int, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 2 || fields[0][0] == 'Z' || fields[0][0] == 'X' {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	return ppid, err == nil
}
