package suite

import (
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
