package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/procscan"
	"github.com/tthost/tthost/sdk/plugin"
	"github.com/tthost/tthost/sdk/sdktest"
)

// start starts command under the test's process marker, and kills it at
// cleanup (before the marker's check).
func start(t *testing.T, procs *sdktest.Processes, cfg plugin.ProcessConfig) *plugin.Process {
	t.Helper()
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env[sdktest.MarkerEnv] = procs.Marker()
	p, err := plugin.StartProcess(cfg)
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	t.Cleanup(func() { p.Kill(); <-p.Done() })
	return p
}

// readUntil reads lines from r until one contains want.
func readUntil(t *testing.T, lines *plugin.LineReader, want string) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		for {
			l, err := lines.Next()
			if strings.Contains(l, want) {
				got <- nil
				return
			}
			if err != nil {
				got <- err
				return
			}
		}
	}()
	if err := recv(t, got, "the line "+want); err != nil {
		t.Fatalf("the output ended before %q: %v", want, err)
	}
}

func assertNoneLeft(t *testing.T, procs *sdktest.Processes) {
	t.Helper()
	if left := procs.Alive(); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left: %s", strings.Join(desc, "; "))
	}
}

func TestAProcessRunsInItsOwnTaggedGroupWithTheChildEnvironment(t *testing.T) {
	t.Setenv("TTHOST_BACKEND_PLUGIN", "cookie") // the handshake a CLI must not see
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{
		Command:  `echo "pgid=$(ps -o pgid= $$ | tr -d ' ') cookie=$TTHOST_BACKEND_PLUGIN agent=$AGENT extra=$EXTRA tag=$TTHOST_PROCESS_TAG"; pwd -P`,
		Dir:      "/",
		Env:      map[string]string{"AGENT": "a1"},
		ExtraEnv: []string{"EXTRA=x"},
	})
	out, err := io.ReadAll(p.Output())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pgid=%d cookie= agent=a1 extra=x tag=%s\n/\n", p.Pid(), strings.TrimPrefix(p.Tag().Env(), plugin.ProcessTagEnv+"="))
	if string(out) != want {
		t.Errorf("output %q\nwant   %q", out, want)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if info := p.ExitInfo(); info.ExitCode == nil || *info.ExitCode != 0 || p.Status() != "exit status 0" {
		t.Errorf("exit %+v (%s)", info, p.Status())
	}
}

func TestHowAProcessEndedIsReported(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{Command: "exit 3"})
	if err := p.Wait(); err == nil || err.Error() != "exit status 3" || *p.ExitInfo().ExitCode != 3 {
		t.Errorf("Wait = %v, exit %+v", err, p.ExitInfo())
	}
	p = start(t, procs, plugin.ProcessConfig{Args: []string{"sh", "-c", "kill -KILL $$"}})
	if err := p.Wait(); err == nil || err.Error() != "killed by signal SIGKILL" || p.ExitInfo().Signal != "SIGKILL" {
		t.Errorf("Wait = %v, exit %+v", err, p.ExitInfo())
	}
	if _, err := plugin.StartProcess(plugin.ProcessConfig{Args: []string{"/nonexistent/mycli"}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing program: %v", err)
	}
	if _, err := plugin.StartProcess(plugin.ProcessConfig{Command: "true", Dir: "/nonexistent/dir"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/dir") {
		t.Errorf("a missing workdir: %v", err)
	}
	bad := plugin.ProcessConfig{Command: "true", Env: map[string]string{"A=B": "x"}}
	if _, err := bad.Environ(); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Errorf("Environ with a bad environment name: %v", err)
	}
	if _, err := plugin.StartProcess(bad); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Errorf("a bad environment name: %v", err)
	}
	if _, err := plugin.StartProcess(plugin.ProcessConfig{}); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Errorf("no command: %v", err)
	}
}

// When a CLI exits, what it left running goes too: its background jobs
// (the group) and a daemon in a session of its own (the tag).
func TestTheEndOfAProcessKillsWhatItLeft(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{Command: `sleep 300 & setsid sleep 300 & echo started`})
	out, _ := io.ReadAll(p.Output()) // ends only when every writer is gone
	<-p.Done()
	if string(out) != "started\n" {
		t.Errorf("output %q", out)
	}
	assertNoneLeft(t, procs)
}

func TestCloseKillsTheGroupAndTheTaggedEvenWhenSignalsAreIgnored(t *testing.T) {
	for _, tc := range []struct{ name, command string }{
		{"a CLI with children", `sleep 300 & sleep 300 & echo ready; wait`},
		{"a CLI that ignores SIGTERM and SIGINT and its stdin", `trap "" TERM INT; sleep 300 & echo ready; while :; do wait; done`},
		{"a setsid grandchild", `setsid sh -c 'trap "" TERM; sleep 300' & echo ready; exec sleep 300`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := sdktest.TrackProcesses(t)
			p := start(t, procs, plugin.ProcessConfig{Command: tc.command, Grace: 200 * time.Millisecond})
			readUntil(t, plugin.NewLineReader(p.Output(), 0), "ready")
			begin := time.Now()
			info := p.Close(context.Background(), sdk.CloseImmediate)
			if took := time.Since(begin); took > 200*time.Millisecond+tagKill {
				t.Errorf("Close took %v", took)
			}
			if info.Signal == "" && info.ExitCode == nil {
				t.Errorf("Close returned no exit info")
			}
			assertNoneLeft(t, procs)
		})
	}
}

const tagKill = 2 * time.Second

func TestAGracefulCloseEndsInputFirst(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{Command: "cat"})
	if _, err := p.WriteString("bye\n"); err != nil {
		t.Fatal(err)
	}
	lines := plugin.NewLineReader(p.Output(), 0)
	readUntil(t, lines, "bye")
	if info := p.Close(context.Background(), sdk.CloseGraceful); info.ExitCode == nil || *info.ExitCode != 0 {
		t.Errorf("cat ended %+v after its stdin was closed, want exit status 0", info)
	}
	if _, err := p.WriteString("late\n"); !errors.Is(err, plugin.ErrStdinClosed) {
		t.Errorf("a write after Close: %v", err)
	}

	// A CLI that ignores its end of input: the graceful close waits for
	// ctx, then kills.
	p = start(t, procs, plugin.ProcessConfig{Command: `trap "" TERM; while :; do sleep 1; done`, Grace: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if info := p.Close(ctx, sdk.CloseGraceful); info.Signal != "SIGKILL" {
		t.Errorf("ended %+v, want killed", info)
	}
	assertNoneLeft(t, procs)

	// Kill ends a graceful close that has no deadline.
	p = start(t, procs, plugin.ProcessConfig{Command: `exec sleep 300`})
	closed := make(chan sdk.ExitInfo)
	go func() { closed <- p.Close(context.Background(), sdk.CloseGraceful) }()
	p.Kill()
	recv(t, closed, "the graceful Close after Kill")
}

func TestConcurrentWritesArriveWhole(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{Command: "cat"})
	const writers, lines = 8, 200
	line := func(w, i int) string { return fmt.Sprintf("writer %d line %d %s", w, i, strings.Repeat("é", 500)) }
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				if _, err := p.WriteString(line(w, i) + "\n"); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	got := map[string]bool{}
	done := make(chan error, 1)
	go func() {
		r := plugin.NewLineReader(p.Output(), 0)
		for len(got) < writers*lines {
			l, err := r.Next()
			if err != nil {
				done <- err
				return
			}
			got[l] = true
		}
		done <- nil
	}()
	wg.Wait()
	if err := recv(t, done, "every line back"); err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		for i := range lines {
			if !got[line(w, i)] {
				t.Fatalf("line %d of writer %d did not come back whole", i, w)
			}
		}
	}
}

func TestAWriteToACLIThatDoesNotReadTimesOut(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{Command: "exec sleep 300", WriteTimeout: 100 * time.Millisecond})
	_, err := p.Write(make([]byte, 1<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "has not read its input") {
		t.Errorf("write = %v", err)
	}
	p.Kill()
	if _, err := p.Write([]byte("x")); err == nil {
		t.Error("a write after the CLI is gone succeeded")
	}
	np := start(t, procs, plugin.ProcessConfig{Command: "cat", NoStdin: true})
	if _, err := np.Write([]byte("x")); !errors.Is(err, plugin.ErrStdinClosed) {
		t.Errorf("a write without stdin: %v", err)
	}
	if out, _ := io.ReadAll(np.Output()); len(out) != 0 {
		t.Errorf("cat read %q from /dev/null", out)
	}
}

func TestStderrCanGoItsOwnWay(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	var stderr strings.Builder
	p := start(t, procs, plugin.ProcessConfig{Command: "echo out; echo err >&2", Stderr: &stderr})
	out, _ := io.ReadAll(p.Output())
	<-p.Done()
	if string(out) != "out\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q", out, stderr.String())
	}
}

// A process that dropped the tag (it cleared its environment) and left the
// group can hold the output open; readers get a deadline error shortly
// after Done instead of waiting for it.
func TestOutputHeldByAnUntaggedEscapeeEnds(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	t.Cleanup(func() {
		for _, pid := range procs.Alive() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	p := start(t, procs, plugin.ProcessConfig{
		// The escapee reports through head only once it runs without the
		// tag, so the CLI cannot end (and the tag kill run) before the
		// escape; its stderr is the CLI's output, which it keeps open.
		Command: `(setsid env -u ` + plugin.ProcessTagEnv + ` sh -c 'echo escaped; exec sleep 300' &) | head -n 1`,
	})
	out, err := io.ReadAll(p.Output())
	if string(out) != "escaped\n" || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("reading the output: %q, %v; want the output and a deadline error", out, err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("the output ended before Done")
	}
}

// Close returns once every process that carried the tag has exited, not
// only been sent SIGKILL: none of them is alive then (a zombie left to its
// new parent at most), so a plugin that exits next leaves nothing behind.
func TestCloseReturnsOnceTheTaggedProcessesHaveExited(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := start(t, procs, plugin.ProcessConfig{Args: []string{"sh", "-c", "sleep 60 & sleep 60 & echo started; wait"}})
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
	p.Close(context.Background(), sdk.CloseImmediate)
	for _, pid := range before {
		if !procscan.Zombie(pid) {
			t.Errorf("pid %d is alive after Close returned", pid)
		}
	}
}
