//go:build linux

package main

import (
	"bytes"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tthost/tthost/sdk/plugin"
)

// exitWatch holds a pidfd of every process of the agent (those carrying
// its tag), opened while they run, so that stop can wait until they have
// really exited. Killing is Process.Close's; but a process it killed may
// still be tearing itself down when Close returns: Claude Code under
// claude-code-acp is a large node process, and once its memory is
// released /proc no longer shows the tag the kill looks for, while the
// process has not exited yet. A plugin that exits then leaves it for the
// host to find.
type exitWatch struct{ fds []int }

func watchExits(p *plugin.Process) *exitWatch {
	w := &exitWatch{}
	entry := []byte(p.Tag().Env())
	for _, pid := range p.Tag().Alive() {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		// Opened after the scan: the pid must still name a process of ours.
		if env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); err != nil || !hasEntry(env, entry) {
			_ = unix.Close(fd)
			continue
		}
		w.fds = append(w.fds, fd)
	}
	return w
}

func hasEntry(env, entry []byte) bool {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, entry) {
			return true
		}
	}
	return false
}

// wait waits until every watched process has exited, at most timeout,
// and releases the pidfds.
func (w *exitWatch) wait(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(w.fds) > 0 {
		fds := make([]unix.PollFd, len(w.fds))
		for i, fd := range w.fds {
			fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			break
		}
		var running []int
		for i, f := range fds {
			if f.Revents == 0 {
				running = append(running, w.fds[i])
			} else {
				_ = unix.Close(w.fds[i])
			}
		}
		w.fds = running
	}
	for _, fd := range w.fds {
		_ = unix.Close(fd)
	}
	w.fds = nil
}
