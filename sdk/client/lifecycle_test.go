package client_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestStopLeavesNoProcessBehind(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	a := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	b := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, a, is(sdk.EventSessionReady))
	readUntil(t, b, is(sdk.EventSessionReady))
	send(t, a, sdk.InputTurn, "SLEEP_MS=60000")
	send(t, b, sdk.InputTurn, "SLEEP_MS=60000")
	readUntil(t, a, is(sdk.EventTurnStarted))
	readUntil(t, b, is(sdk.EventTurnStarted))
	if alive := e.procs.Alive(); len(alive) != 3 {
		t.Fatalf("want the plugin and two session children alive, got %v", alive)
	}

	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if alive := e.procs.Alive(); len(alive) > 0 {
		t.Errorf("processes alive after Stop returned: %v", alive)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done is open after Stop")
	}
	if st := p.ExitState(); st == nil || st.ExitCode() != 0 {
		t.Errorf("the plugin ended with %v; a graceful stop exits 0", st)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}
	for _, s := range []*client.Session{a, b} {
		// The plugin closed its sessions before it exited, and the host
		// received their last events.
		checkClosedByPlugin(t, readUntil(t, s, is(sdk.EventExited)))
		if _, ok := <-s.Events(); ok {
			t.Errorf("session %s: events channel open after Exited", s.ID())
		}
	}
	if _, err := a.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, sdk.ErrPluginExited) {
		t.Errorf("send after stop: %v; want ErrPluginExited", err)
	}
	if _, err := p.OpenSession(context.Background(), sdk.SessionConfig{CLIName: "echo"}); !errors.Is(err, sdk.ErrPluginExited) {
		t.Errorf("open after stop: %v; want ErrPluginExited", err)
	}
}

func TestSIGTERMClosesSessionsAndExitsZero(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	send(t, s, sdk.InputTurn, "SLEEP_MS=60000")
	readUntil(t, s, is(sdk.EventTurnStarted))

	if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the plugin did not exit after SIGTERM")
	}
	evs := readUntil(t, s, is(sdk.EventExited))
	if err := p.Stop(time.Second); err != nil { // collects the exit status
		t.Fatal(err)
	}
	if st := p.ExitState(); st == nil || st.ExitCode() != 0 {
		t.Errorf("the plugin ended with %v, want exit status 0", st)
	}
	// The running turn was interrupted and the session closed by the
	// backend itself (it logs that), not merely killed.
	if !e.sink.waitFor("echo session closed", 5*time.Second) {
		t.Error("the backend's Close was not called before the plugin exited")
	}
	if !e.sink.waitFor("reason=SIGTERM", 5*time.Second) {
		t.Error("the plugin did not log why it stopped")
	}
	checkClosedByPlugin(t, evs)
	if alive := e.procs.WaitGone(5 * time.Second); len(alive) > 0 {
		t.Errorf("processes left: %v", alive)
	}
}

func TestPluginDiesWithItsHost(t *testing.T) {
	e := newEnv(t)
	echo := build(t, "echo")
	host := exec.Command(build(t, "minihost"), echo, hex.EncodeToString(sdktest.SHA256File(t, echo)))
	host.Env = append(e.procs.Environ(), "GORACE="+quickRaceExit)
	host.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	host.Stderr = e.sink
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-host.Process.Pid, syscall.SIGKILL)
		_ = host.Wait()
	})

	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "PLUGIN_PID ") {
				line <- sc.Text()
				return
			}
		}
		close(line)
	}()
	var pid int
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatal("minihost exited without launching the plugin")
		}
		fmt.Sscanf(l, "PLUGIN_PID %d", &pid)
	case <-time.After(30 * time.Second):
		t.Fatal("minihost did not report the plugin's pid")
	}
	socketDir := socketDirOf(t, pid)
	if len(e.procs.Alive()) != 3 {
		t.Fatalf("want minihost, the plugin and its session child alive, got %v", e.procs.Alive())
	}

	// The host dies without a word: no Stop, no Kill RPC.
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	if alive := e.procs.WaitGone(10 * time.Second); len(alive) > 0 {
		t.Fatalf("processes outlived their host: %v", alive)
	}
	// The host was killed, so the plugin removes its socket directory.
	if _, err := os.Stat(socketDir); err == nil {
		t.Errorf("the plugin left its socket directory %s behind", socketDir)
	}
}

func TestStopKillsAPluginThatDoesNotStopInTime(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, s, is(sdk.EventSessionReady))
	// A stopped process answers neither the Shutdown RPC nor SIGTERM.
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(300 * time.Millisecond); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stop took %v with a grace of 300ms", took)
	}
	if st := p.ExitState(); st == nil || !strings.Contains(st.String(), "killed") {
		t.Errorf("the plugin ended with %v, want killed", st)
	}
	// Its session's child lives in a group of its own; the backend's
	// parent-death signal takes it down with the plugin.
	if alive := e.procs.WaitGone(5 * time.Second); len(alive) > 0 {
		t.Errorf("processes left: %v", alive)
	}
	evs := readUntil(t, s, is(sdk.EventExited))
	if last := evs[len(evs)-1]; last.Exited == nil || last.Exited.Reason != sdk.ExitPluginExited {
		t.Errorf("session ended with %v, want Exited(plugin_exited)", kinds(evs))
	}
}

func TestAPluginKilledFromOutsideIsReported(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	send(t, s, sdk.InputTurn, "SLEEP_MS=60000")
	before := readUntil(t, s, is(sdk.EventTurnStarted))
	lastSeq := before[len(before)-1].Seq

	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done was not closed after the plugin was killed")
	}
	evs := readUntil(t, s, is(sdk.EventExited))
	last := evs[len(evs)-1]
	if last.Exited == nil || last.Exited.Reason != sdk.ExitPluginExited {
		t.Fatalf("session ended with %v, want a synthetic Exited(plugin_exited)", kinds(evs))
	}
	if len(evs) > 1 {
		lastSeq = evs[len(evs)-2].Seq
	}
	if last.Seq != lastSeq+1 {
		t.Errorf("the synthetic Exited has seq %d after %d: a gap", last.Seq, lastSeq)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, sdk.ErrPluginExited) {
		t.Errorf("send: %v, want ErrPluginExited", err)
	}
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Errorf("closing a session of a dead plugin: %v, want success", err)
	}
}

// checkClosedByPlugin checks that a session with a running turn ended the
// orderly way: the turn interrupted, then Exited(closed) from the plugin.
func checkClosedByPlugin(t *testing.T, evs []sdk.Event) {
	t.Helper()
	var interrupted bool
	for _, ev := range evs {
		if ev.Kind == sdk.EventTurnCompleted && ev.Completed.Status == sdk.StatusInterrupted {
			interrupted = true
		}
	}
	last := evs[len(evs)-1]
	if !interrupted || last.Kind != sdk.EventExited || last.Exited.Reason != sdk.ExitClosed {
		t.Errorf("session events %v ending with %+v; want the running turn interrupted, then Exited(closed)", kinds(evs), last.Exited)
	}
}

// socketDirOf reads the socket directory the host gave a plugin from the
// plugin's environment.
func socketDirOf(t *testing.T, pid int) string {
	t.Helper()
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		if dir, ok := strings.CutPrefix(kv, "PLUGIN_UNIX_SOCKET_DIR="); ok {
			return dir
		}
	}
	t.Fatal("the plugin has no PLUGIN_UNIX_SOCKET_DIR")
	return ""
}
