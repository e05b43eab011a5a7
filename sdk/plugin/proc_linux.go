package plugin

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr starts a CLI in a process group of its own, so that a signal
// to the group reaches every process it runs in the foreground. Pdeathsig
// takes it down with a plugin that dies without closing its sessions (it
// fires when the forking thread ends; Go keeps its threads, so in practice
// when the plugin does).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitUnreaped returns once pid has exited, without reaping it: until it
// is reaped, neither its pid nor its group id can be reused. It reports
// true: it could wait so.
func waitUnreaped(pid int) bool {
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			return true
		}
	}
}
