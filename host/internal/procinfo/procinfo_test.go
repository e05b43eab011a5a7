package procinfo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRunning(t *testing.T) {
	if !Running(os.Getpid()) {
		t.Fatal("this test process is not running")
	}
	if Running(os.Getpid(), "no-such-word-in-a-test-cmdline") {
		t.Fatal("a cmdline without the word counts as running")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Running(cmd.Process.Pid) {
		t.Fatal("an exited (reaped) process counts as running")
	}
	if Running(0) || Running(-1) {
		t.Fatal("pid 0 or -1 counts as running")
	}
}

// A process in the middle of execve has an empty /proc/PID/cmdline for a
// moment (the new image's arguments are not set up yet). A restart in
// place (`tthost serve --upgrade`, an agent-loop's SIGUSR2) is such an
// exec; the process must count as running all through it.
func TestRunningThroughExec(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "reexec.sh")
	// Re-executes itself n times, then says so and waits on stdin.
	body := `n=$1
if [ "$n" -gt 0 ]; then exec sh "$0" $((n - 1)) procinfo-marker; fi
: > "` + filepath.Join(dir, "done") + `"
read x
exit 0
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", script, "400", "procinfo-marker")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	misses, checks := 0, 0
	for {
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			break
		}
		checks++
		if !Running(cmd.Process.Pid, "procinfo-marker") {
			misses++
		}
	}
	if !Running(cmd.Process.Pid, "procinfo-marker") {
		t.Fatal("the process is not running after its last exec")
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if misses != 0 {
		t.Fatalf("a process re-executing itself counted as not running %d times in %d checks", misses, checks)
	}
}

// A zombie (exited, not yet reaped by its parent) is not running.
func TestZombieIsNotRunning(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	// Wait for the exit without reaping it.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if Running(cmd.Process.Pid) {
		t.Fatal("a zombie counts as running")
	}
}

func TestState(t *testing.T) {
	for in, want := range map[string]byte{
		"12 (tthost) S 1 12": 'S',
		"12 (a) b) (c) Z 1":  'Z',
		"7 (x) R":            'R',
	} {
		if got, ok := State([]byte(in)); !ok || got != want {
			t.Errorf("State(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "12 (tthost)", "12 (tthost) ", "12 tthost S", "12 (x)S"} {
		if got, ok := State([]byte(in)); ok {
			t.Errorf("State(%q) = %q; want not ok", in, got)
		}
	}
}

func FuzzState(f *testing.F) {
	f.Add([]byte("12 (tthost) S 1 12"))
	f.Add([]byte("12 (a) b) Z"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		state, ok := State(b)
		if ok && !bytes.Contains(b, []byte{')', ' ', state}) {
			t.Fatalf("State(%q) = %q not after a \")\"", b, state)
		}
	})
}
