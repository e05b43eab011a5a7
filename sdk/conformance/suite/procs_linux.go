package suite

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waitAnyExit waits until one of pids exits, or timeout passes: a poll on
// their pidfds, so the exit is an event.
func waitAnyExit(pids []int, marker string, timeout time.Duration) {
	w := watchExits(pids, marker)
	defer w.close()
	if len(w.fds) < len(pids) {
		return // one is gone already (or cannot be watched): rescan
	}
	fds := make([]unix.PollFd, len(w.fds))
	for i, fd := range w.fds {
		fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	ms := int(min(timeout.Milliseconds()+1, 1<<30))
	for {
		if _, err := unix.Poll(fds, ms); err != unix.EINTR {
			return
		}
	}
}

// exitWatch holds pidfds of processes, to ask later which still run.
type exitWatch struct {
	pids []int
	fds  []int
}

// watchExits opens a pidfd per pid that still carries marker.
func watchExits(pids []int, marker string) *exitWatch {
	w := &exitWatch{}
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		// Opened after the scan: make sure the pid still names our process.
		if !carries(pid, marker) {
			_ = unix.Close(fd)
			continue
		}
		w.pids = append(w.pids, pid)
		w.fds = append(w.fds, fd)
	}
	return w
}

// running lists the watched processes that have not exited, at once.
func (w *exitWatch) running() []int {
	if len(w.fds) == 0 {
		return nil
	}
	fds := make([]unix.PollFd, len(w.fds))
	for i, fd := range w.fds {
		fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	for {
		if _, err := unix.Poll(fds, 0); err != unix.EINTR {
			break
		}
	}
	var out []int
	for i, f := range fds {
		if f.Revents == 0 {
			out = append(out, w.pids[i])
		}
	}
	return out
}

func (w *exitWatch) close() {
	for _, fd := range w.fds {
		_ = unix.Close(fd)
	}
	w.fds, w.pids = nil, nil
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
