package client

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/sdktest"
)

// Both ways of noticing an exit: the pidfd watch and the polling fallback
// for kernels without pidfds.
func TestExitWatchesNoticeAnExit(t *testing.T) {
	for name, watch := range map[string]func(*os.Process) <-chan struct{}{
		"pidfd": watchExit,
		"poll":  pollExit,
	} {
		t.Run(name, func(t *testing.T) {
			procs := sdktest.TrackProcesses(t)
			cmd := exec.Command("sleep", "300")
			cmd.Env = procs.Environ()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var reaped sync.Once
			reap := func() { reaped.Do(func() { _ = cmd.Wait() }) }
			t.Cleanup(func() {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				reap()
			})
			done := watch(cmd.Process)
			select {
			case <-done:
				t.Fatal("reported an exit while the process runs")
			default:
			}
			if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Not reaped yet: the watch must see the zombie, as the host
			// sees a plugin that go-plugin has not waited for.
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the exit was not noticed")
			}
			reap()
		})
	}
}
