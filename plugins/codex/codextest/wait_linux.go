package codextest

import (
	"syscall"
	"unsafe"
)

// waitid(2) constants (linux).
const (
	pPID    = 1
	wNOWAIT = 0x01000000
)

// waitExited blocks until the child pid has exited without reaping it:
// until it is reaped its pid stays reserved, so killing its process group
// afterwards cannot hit a stranger that reused the number.
func waitExited(pid int) {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}
