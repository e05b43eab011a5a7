// Package procinfo answers one question about a process on this machine:
// is it alive and still the program we think it is? A worker or host
// recorded by pid in Redis may be gone, and its pid reused by something
// else.
package procinfo

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Running reports whether pid is alive and its command line contains
// every word (a reused pid running something else does not count). When
// the command line cannot be read, a live pid counts as running.
func Running(pid int, words ...string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return true
	}
	cmd := string(b)
	for _, w := range words {
		if !strings.Contains(cmd, w) {
			return false
		}
	}
	return true
}
