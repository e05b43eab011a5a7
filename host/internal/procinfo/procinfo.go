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
//
// An empty command line is either a zombie (exited, not reaped: not
// running) or a process in the middle of execve, whose new image has no
// arguments set up yet: a tthost restarting in place (SIGUSR2), which
// counts as running; its command line is back a moment later.
func Running(pid int, words ...string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	proc := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return true
	}
	if len(b) == 0 {
		stat, err := os.ReadFile(proc + "/stat")
		if err != nil {
			return true
		}
		state, ok := State(stat)
		return !ok || (state != 'Z' && state != 'X')
	}
	cmd := string(b)
	for _, w := range words {
		if !strings.Contains(cmd, w) {
			return false
		}
	}
	return true
}

// State is the state letter (R, S, D, Z, X, ...) of a /proc/PID/stat
// line: "pid (comm) state ...", where comm may hold spaces and
// parentheses, so the state follows the last ')'. ok is false when the
// line has no such field.
func State(stat []byte) (state byte, ok bool) {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || s[i+1] != ' ' {
		return 0, false
	}
	return s[i+2], true
}
