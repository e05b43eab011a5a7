package client

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr makes the plugin a process-group leader, so that one signal
// reaches it and every child it did not move elsewhere, and, unless the
// plugin is to outlive the host (reattach), asks the kernel to send it
// SIGTERM when the host dies.
//
// The parent-death signal is tied to the host thread that forked the
// plugin: Go ends a thread only when a goroutine exits while locked to it,
// which tthost does not do. The SDK also polls its parent as a backstop.
func sysProcAttr(outliveHost bool) *syscall.SysProcAttr {
	if outliveHost {
		return &syscall.SysProcAttr{Setpgid: true}
	}
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// watchExit returns a channel closed when the process exits. It waits on a
// pidfd, so the exit is an event; kernels without pidfds get a poll.
func watchExit(p *os.Process) <-chan struct{} {
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return pollExit(p)
	}
	done := make(chan struct{})
	// The pidfd is ours only if the pid was not reaped and reused before it
	// was opened. os.Process signals through Go's own pidfd, so a
	// successful signal 0 afterwards proves the pid still named our child.
	if p.Signal(syscall.Signal(0)) != nil {
		_ = unix.Close(fd)
		close(done)
		return done
	}
	go func() {
		defer unix.Close(fd)
		defer close(done)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				return
			}
		}
	}()
	return done
}
