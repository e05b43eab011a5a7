package sdktest

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
)

// DebugPlugin is a plugin binary serving in debug mode (`plugin --debug`),
// as an author runs it under a debugger.
type DebugPlugin struct {
	// Reattach is the value of sdk.ReattachEnv the plugin printed: give it
	// to a host to have it attach instead of launching the plugin.
	Reattach string
	// Cmd is the plugin process, in a process group of its own.
	Cmd *exec.Cmd
	// Exited is closed once the process has exited and been reaped.
	Exited <-chan struct{}
}

// StartDebugPlugin starts bin with --debug (and env added to the test's
// environment) and waits for the reattach line it prints. The plugin's
// process group is killed at cleanup.
func StartDebugPlugin(t testing.TB, bin string, env ...string) *DebugPlugin {
	t.Helper()
	cmd := exec.Command(bin, "--debug")
	cmd.Env = append(cmd.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s --debug: %v", bin, err)
	}
	exited := make(chan struct{})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		for sc.Scan() { // keep draining: a stray print must not block it
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	var l string
	select {
	case l = <-line:
	case <-time.After(WaitLong):
		t.Fatalf("%s --debug printed no reattach line within %v", bin, WaitLong)
	}
	value, ok := strings.CutPrefix(l, sdk.ReattachEnv+"=")
	if !ok || len(value) < 2 {
		t.Fatalf("%s --debug printed %q, not %s='...'", bin, l, sdk.ReattachEnv)
	}
	return &DebugPlugin{Reattach: strings.Trim(value, "'"), Cmd: cmd, Exited: exited}
}
