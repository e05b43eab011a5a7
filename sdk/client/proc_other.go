//go:build unix && !linux

package client

import (
	"os"
	"syscall"
)

// sysProcAttr makes the plugin a process-group leader. Without a
// parent-death signal on this system, the SDK's parent poll notices a dead
// host.
func sysProcAttr(bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func watchExit(p *os.Process) <-chan struct{} { return pollExit(p) }
