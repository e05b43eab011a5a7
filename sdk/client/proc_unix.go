//go:build unix

package client

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollExit is the fallback exit watch: the process is gone once Go reports
// it done (reaped) or /proc shows it a zombie.
func pollExit(p *os.Process) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			if p.Signal(syscall.Signal(0)) != nil || zombie(p.Pid) {
				return
			}
		}
	}()
	return done
}

// signalGroup sends sig to every process in the group; a group already
// empty is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return errors.New("refusing to signal process group <= 1")
	}
	if err := unix.Kill(-pgid, sig); err != nil && err != unix.ESRCH {
		return err
	}
	return nil
}

// groupAlive lists the live members of a process group. Zombies do not
// count: orphans wait for init to reap them, which some containers' init
// never does. Where /proc is missing it falls back to kill(-pgid, 0).
func groupAlive(pgid int) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		if unix.Kill(-pgid, 0) == nil {
			return []int{pgid}
		}
		return nil
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		state, pgrp, ok := procStat(pid)
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGroupGone polls until the group has no live member, up to timeout,
// and returns the members left. There is no event for "a process that is
// not my child exited", hence the poll.
func waitGroupGone(pgid int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	for {
		left := groupAlive(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 50*time.Millisecond)
	}
}

func zombie(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && (state == 'Z' || state == 'X')
}

// procStat reads a process's state and process group from /proc/PID/stat.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	st, err := readStat(pid)
	if err != nil {
		return 0, 0, false
	}
	return st.state, st.pgrp, true
}

// procStatus is what the host reads from /proc/PID/stat.
type procStatus struct {
	state byte
	pgrp  int
	// startTime is field 22, the process's start in clock ticks after
	// boot: with the pid, it names one process for the machine's uptime,
	// so a pid reused by another process is told apart.
	startTime uint64
}

func readStat(pid int) (procStatus, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStatus{}, err
	}
	return parseStat(b)
}

// parseStat parses the contents of /proc/PID/stat:
// "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
// majflt cmajflt utime stime cutime cstime priority nice num_threads
// itrealvalue starttime ...". comm may hold spaces and parentheses, so the
// fields are counted from its last ')'.
func parseStat(b []byte) (procStatus, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStatus{}, errors.New("/proc stat: no ')' after the command name")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 {
		return procStatus{}, fmt.Errorf("/proc stat: %d fields after the command name, want at least 20", len(f))
	}
	if len(f[0]) != 1 {
		return procStatus{}, fmt.Errorf("/proc stat: state %q is not one letter", f[0])
	}
	pgrp, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return procStatus{}, fmt.Errorf("/proc stat: process group: %v", err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStatus{}, fmt.Errorf("/proc stat: start time: %v", err)
	}
	return procStatus{state: f[0][0], pgrp: pgrp, startTime: start}, nil
}
