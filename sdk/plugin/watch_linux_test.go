package plugin_test

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitFileIs waits until the file at path holds exactly want, waking on
// the file's writes (inotify) rather than polling, and reports whether it
// did within timeout.
func waitFileIs(t *testing.T, path, want string, timeout time.Duration) bool {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		// The watch is in place before this read, so no write is missed.
		if b, _ := os.ReadFile(path); string(b) == want {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
		_, _ = unix.Read(fd, buf) // drain the events; the file is read again above
	}
}
