package client

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// watchPid returns a channel closed when the process exits or stop is
// closed, whichever comes first. The process need not be our child: it
// waits on a pidfd, and on a pipe that stop closes, so that nothing is
// left waiting after a detach. Kernels without pidfds get a poll.
func watchPid(pid int, stop <-chan struct{}) <-chan struct{} {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		done := make(chan struct{})
		close(done)
		return done
	}
	if err != nil {
		return pollPid(pid, stop)
	}
	r, w, err := os.Pipe()
	if err != nil {
		_ = unix.Close(fd)
		return pollPid(pid, stop)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-done:
		}
		_ = w.Close() // wakes the poll below with POLLHUP
	}()
	go func() {
		defer close(done)
		defer unix.Close(fd)
		defer r.Close()
		fds := []unix.PollFd{
			{Fd: int32(fd), Events: unix.POLLIN},
			{Fd: int32(r.Fd()), Events: unix.POLLIN},
		}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				return
			}
		}
	}()
	return done
}

// checkPeer proves that the process listening on the socket is pid and
// runs as this user, so a stale or mistyped entry cannot make the host
// talk to someone else's process.
func checkPeer(path string, pid int) error {
	peer, uid, err := socketPeer(path)
	if err != nil {
		return fmt.Errorf("%v; the plugin has stopped: start it again with --debug", err)
	}
	if peer != pid {
		return fmt.Errorf("%s is served by pid %d, not by pid %d as the entry says; copy the line the plugin printed", path, peer, pid)
	}
	if uid != os.Getuid() {
		return fmt.Errorf("pid %d runs as user %d, not as this user (%d)", pid, uid, os.Getuid())
	}
	return nil
}

// socketPeer connects to a unix socket and returns the pid and user of
// the process that accepted.
func socketPeer(path string) (pid, uid int, err error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return 0, 0, fmt.Errorf("nothing accepts connections on %s (%v)", path, err)
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if credErr != nil {
		return 0, 0, fmt.Errorf("the socket's owner: %v", credErr)
	}
	return int(cred.Pid), int(cred.Uid), nil
}
