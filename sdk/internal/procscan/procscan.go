// Package procscan finds processes by an environment entry. A process
// inherits its parent's environment, so a token set on a plugin process
// marks every process it starts, wherever they are reparented: the host
// uses that to clean up after a plugin that died without stopping its CLI
// processes, and tests use it to prove nothing was left behind.
package procscan

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// FindByEnv lists the PIDs of live processes whose environment contains
// the exact KEY=VALUE entry. Zombies, unreadable processes and the calling
// process are skipped.
func FindByEnv(entry string) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(entry)
	self := os.Getpid()
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil || len(env) == 0 {
			continue
		}
		if hasEntry(env, want) && !Zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// HasEnv reports whether the process pid's environment (as it was
// exec'd) contains the exact KEY=VALUE entry. A process that is gone or
// unreadable (another user's) has none.
func HasEnv(pid int, entry string) bool {
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	return err == nil && hasEntry(env, []byte(entry))
}

// hasEntry reports whether the NUL-separated environment env holds entry.
func hasEntry(env, entry []byte) bool {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, entry) {
			return true
		}
	}
	return false
}

// Zombie reports whether pid is a zombie or gone.
func Zombie(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	return stat[i+2] == 'Z' || stat[i+2] == 'X'
}

// KillByEnv SIGKILLs every live process carrying entry, again and again
// until none is left or timeout passes (a process may start children while
// it is being killed), and returns those still alive. The entry is what
// makes this safe: a reused pid does not carry it.
func KillByEnv(entry string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	for {
		pids := FindByEnv(entry)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(backoff) // no event tells that a stranger's process died
		backoff = min(backoff*2, 50*time.Millisecond)
	}
}
