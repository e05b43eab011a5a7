package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
	"github.com/tthost/tthost/sdk/sdktest"
)

// stop's wait: once it returns, every process that carried the agent's
// tag has exited (it may be a zombie left to its new parent, never alive).
func TestExitWatchWaitsUntilTheProcessesHaveExited(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	p, err := plugin.StartProcess(plugin.ProcessConfig{
		Args: []string{"sh", "-c", "sleep 60 & sleep 60 & echo started; wait"},
		Env:  map[string]string{sdktest.MarkerEnv: procs.Marker()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	line, err := plugin.NewLineReader(p.Output(), 1024).Next()
	if err != nil || string(line) != "started" {
		t.Fatalf("%q, %v", line, err)
	}
	// sh, and the sleeps that have exec'd by now (a process between fork
	// and exec may not show its environment yet).
	before := p.Tag().Alive()
	if len(before) < 2 {
		t.Fatalf("tagged processes %v, want sh and its sleeps", before)
	}
	w := watchExits(p)
	p.Close(context.Background(), sdk.CloseImmediate)
	start := time.Now()
	w.wait(5 * time.Second)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("wait took %v", took)
	}
	for _, pid := range before {
		if state := procState(pid); state != "" && state != "Z" {
			t.Errorf("pid %d is in state %s after the wait", pid, state)
		}
	}
	if len(w.fds) != 0 {
		t.Errorf("pidfds left open: %v", w.fds)
	}
}

// procState is the state letter in /proc/<pid>/stat ("R", "S", "Z", ...),
// or "" when the process is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command may hold spaces and parentheses: the state follows the
	// last ")".
	_, rest, _ := strings.Cut(string(b[strings.LastIndexByte(string(b), ')'):]), " ")
	state, _, _ := strings.Cut(rest, " ")
	return state
}
