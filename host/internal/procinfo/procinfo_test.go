package procinfo

import (
	"os"
	"os/exec"
	"testing"
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
