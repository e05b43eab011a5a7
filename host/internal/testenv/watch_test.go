package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitFileContainsWakesOnTheWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	go func() {
		_ = os.WriteFile(path, []byte("starting\n"), 0o644)
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		_, _ = f.WriteString("ready\n")
		_ = f.Close()
	}()
	if !WaitFileContains(t, path, "ready", 10*time.Second) {
		t.Fatal("the line never showed")
	}
	if WaitFileContains(t, path, "never written", 100*time.Millisecond) {
		t.Fatal("found text that was never written")
	}
}

func TestWaitExitSeesAProcessEnd(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if WaitExit(cmd.Process.Pid, 100*time.Millisecond) {
		t.Fatal("a running process counted as exited")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !WaitExit(cmd.Process.Pid, 10*time.Second) {
		t.Fatal("the killed process did not count as exited")
	}

	// One that exits while we wait, not yet reaped.
	short := exec.Command("sleep", "0.2")
	if err := short.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = short.Wait() })
	if !WaitExit(short.Process.Pid, 10*time.Second) {
		t.Fatal("the exit during the wait was missed")
	}
}

func TestBufferWaitAfterWakesOnAWrite(t *testing.T) {
	var b Buffer
	_, _ = b.Write([]byte("old ready\n"))
	mark := b.Len()
	go func() { _, _ = b.Write([]byte("new ready\n")) }()
	if !b.WaitAfter(mark, "new ready", 10*time.Second) {
		t.Fatal("the new line never showed")
	}
	if b.WaitAfter(b.Len(), "ready", 50*time.Millisecond) {
		t.Fatal("WaitAfter matched text written before the mark")
	}
}
