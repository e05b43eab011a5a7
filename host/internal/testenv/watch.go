package testenv

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WatchDir reports every change in dir (a file created, written, moved or
// removed) on a coalescing channel, through inotify, until the test ends:
// a test re-checks what it waits for on each value instead of polling.
func WatchDir(t testing.TB, dir string) <-chan struct{} {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	const mask = syscall.IN_CREATE | syscall.IN_MODIFY | syscall.IN_CLOSE_WRITE | syscall.IN_MOVED_TO | syscall.IN_DELETE
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		_ = syscall.Close(fd)
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	// Non-blocking, so the runtime's poller waits for it and Close ends
	// a blocked Read.
	f := os.NewFile(uintptr(fd), "inotify:"+dir)
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { _ = f.Close(); <-done })
	return changed
}

// WaitFileContains waits until the file at path contains text, and reports
// whether it did within timeout. It wakes on changes in the file's
// directory (WatchDir), not on a timer.
func WaitFileContains(t testing.TB, path, text string, timeout time.Duration) bool {
	t.Helper()
	changed := WatchDir(t, dirOf(path))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), text) {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

// WaitExit waits until the process pid has exited, whoever its parent is,
// and reports whether it did within timeout. It waits on a pidfd (Linux
// 5.3 and later), which becomes readable when the process ends: no /proc
// polling. A process that is already gone counts as exited.
func WaitExit(pid int, timeout time.Duration) bool {
	const sysPidfdOpen = 434 // pidfd_open(2) on every Linux architecture
	r, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno == syscall.ESRCH {
		return true
	}
	if errno != 0 {
		return syscall.Kill(pid, 0) != nil
	}
	fd := int(r)
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return syscall.Kill(pid, 0) != nil
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	// The first call finds the pidfd not readable and asks the poller to
	// wait; the second runs once it is: the process has exited.
	calls := 0
	err = rc.Read(func(uintptr) bool { calls++; return calls > 1 })
	return err == nil
}
