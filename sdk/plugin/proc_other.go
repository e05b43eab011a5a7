//go:build !linux

package plugin

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitUnreaped cannot wait without reaping here (false): the group is
// killed right after the reap, with a small window in which its id could
// be reused.
func waitUnreaped(int) bool { return false }
