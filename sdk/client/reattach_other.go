//go:build unix && !linux

package client

import (
	"fmt"
	"net"
	"syscall"
)

// watchPid returns a channel closed when the process exits or stop is
// closed, whichever comes first. Without pidfds, it polls.
func watchPid(pid int, stop <-chan struct{}) <-chan struct{} { return pollPid(pid, stop) }

// checkPeer checks that the process lives and something accepts
// connections on the socket; this system gives no portable way to learn
// who.
func checkPeer(path string, pid int) error {
	if err := syscall.Kill(pid, 0); err != nil {
		return fmt.Errorf("pid %d: %v", pid, err)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("nothing accepts connections on %s (%v); the plugin has stopped: start it again with --debug", path, err)
	}
	return conn.Close()
}

// socketPeer cannot learn who serves a socket on this system: reattaching
// is refused.
func socketPeer(path string) (pid, uid int, err error) {
	return 0, 0, fmt.Errorf("cannot tell which process serves %s on this system", path)
}
