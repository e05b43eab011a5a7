//go:build linux

package procscan

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Watch holds a pidfd of each watched process, so that its exit is an
// event. A kill does not end a process at once: a large one (a node CLI)
// tears itself down for a while, and once its memory is released /proc no
// longer shows the environment FindByEnv matches, though it has not
// exited yet. Close releases the pidfds.
type Watch struct {
	pids []int
	fds  []int
}

// WatchByEnv watches the live processes carrying entry.
func WatchByEnv(entry string) *Watch { return WatchPids(FindByEnv(entry), entry) }

// WatchPids watches those of pids that still carry entry (a pidfd is
// opened after they were found: the pid must still name that process; an
// empty environment is one already exiting, still ours).
func WatchPids(pids []int, entry string) *Watch {
	w := &Watch{}
	want := []byte(entry)
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err == nil && len(env) > 0 && !hasEntry(env, want) {
			_ = unix.Close(fd)
			continue
		}
		w.pids = append(w.pids, pid)
		w.fds = append(w.fds, fd)
	}
	return w
}

// Len is how many processes are watched.
func (w *Watch) Len() int { return len(w.fds) }

// poll polls the pidfds for up to ms milliseconds (0: at once) and
// returns which have exited.
func (w *Watch) poll(ms int) []bool {
	pfds := make([]unix.PollFd, len(w.fds))
	for i, fd := range w.fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	for {
		if _, err := unix.Poll(pfds, ms); err != unix.EINTR {
			break
		}
	}
	exited := make([]bool, len(pfds))
	for i, p := range pfds {
		exited[i] = p.Revents != 0
	}
	return exited
}

// Running lists the watched processes that have not exited, at once.
func (w *Watch) Running() []int {
	var out []int
	for i, exited := range w.poll(0) {
		if !exited {
			out = append(out, w.pids[i])
		}
	}
	return out
}

// WaitAny waits until one watched process exits, or timeout passes.
func (w *Watch) WaitAny(timeout time.Duration) {
	if len(w.fds) > 0 {
		w.poll(int(min(timeout.Milliseconds()+1, 1<<30)))
	}
}

// WaitAll waits until every watched process has exited (it may be a
// zombie left to its new parent, never alive), or timeout passes, and
// closes the watch.
func (w *Watch) WaitAll(timeout time.Duration) {
	defer w.Close()
	deadline := time.Now().Add(timeout)
	for len(w.fds) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		var pids, fds []int
		for i, exited := range w.poll(int(left.Milliseconds()) + 1) {
			if exited {
				_ = unix.Close(w.fds[i])
			} else {
				pids, fds = append(pids, w.pids[i]), append(fds, w.fds[i])
			}
		}
		w.pids, w.fds = pids, fds
	}
}

// Close releases the pidfds.
func (w *Watch) Close() {
	for _, fd := range w.fds {
		_ = unix.Close(fd)
	}
	w.pids, w.fds = nil, nil
}
