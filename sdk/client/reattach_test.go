package client_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// debugPlugin is a plugin binary started by hand in debug mode, as an
// author would start it under a debugger.
type debugPlugin struct {
	cmd    *exec.Cmd
	line   string // what it printed on stdout
	info   client.ReattachInfo
	exited chan struct{} // closed once it exited and was reaped
	stderr *logSink
}

// startDebug starts bin with args and extra environment, reads the
// reattach line it prints, and parses it as a host would.
func startDebug(t *testing.T, e *env, bin string, args []string, extraEnv ...string) *debugPlugin {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(e.procs.Environ(), "GORACE="+quickRaceExit), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d := &debugPlugin{cmd: cmd, exited: make(chan struct{}), stderr: &logSink{t: t, changed: make(chan struct{})}}
	cmd.Stderr = d.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() { // keep draining so a stray print cannot block it
		}
		_ = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
		}
	})

	select {
	case l, ok := <-lines:
		if !ok {
			<-d.exited
			t.Fatalf("the plugin printed nothing on stdout and exited (%v); stderr:\n%s", cmd.ProcessState, d.stderr)
		}
		d.line = l
	case <-time.After(30 * time.Second):
		t.Fatalf("no reattach line within 30s; stderr:\n%s", d.stderr)
	}
	value, ok := strings.CutPrefix(d.line, sdk.ReattachEnv+"=")
	if !ok || len(value) < 2 || value[0] != '\'' || value[len(value)-1] != '\'' {
		t.Fatalf("stdout line %q is not %s='...'", d.line, sdk.ReattachEnv)
	}
	plugins, err := client.ParseReattach(value[1 : len(value)-1])
	if err != nil {
		t.Fatal(err)
	}
	info, ok := plugins["echo"]
	if !ok || len(plugins) != 1 {
		t.Fatalf("reattach entries %+v; want one, for echo", plugins)
	}
	if info.Pid != cmd.Process.Pid || info.ProtocolVersion != sdk.ProtocolVersion || info.Addr.Network != "unix" {
		t.Errorf("reattach entry %+v for pid %d", info, cmd.Process.Pid)
	}
	d.info = info
	return d
}

// signal sends sig and waits for the plugin to exit; it returns the
// exit status.
func (d *debugPlugin) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("the plugin in debug mode did not exit after %v; stderr:\n%s", sig, d.stderr)
	}
	return d.cmd.ProcessState.ExitCode()
}

func (e *env) attach(info client.ReattachInfo) *client.Plugin {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := client.Attach(ctx, info, client.Config{Logger: e.log, HostVersion: "test"})
	if err != nil {
		e.t.Fatalf("attach: %v", err)
	}
	e.t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	return p
}

func TestAttachUsesAPluginRunningInDebugMode(t *testing.T) {
	e := newEnv(t)
	d := startDebug(t, e, build(t, "echo"), []string{"--debug"})
	for _, want := range []string{"serving in debug mode", "export " + d.line, "for development only"} {
		if !d.stderr.waitFor(want, 10*time.Second) {
			t.Errorf("stderr lacks %q:\n%s", want, d.stderr)
		}
	}

	p := e.attach(d.info)
	if desc := p.Description(); desc.Name != "echo" || desc.ProtocolVersion != sdk.ProtocolVersion {
		t.Errorf("description %+v", desc)
	}
	if p.Pid() != d.cmd.Process.Pid {
		t.Errorf("Pid() = %d, want %d", p.Pid(), d.cmd.Process.Pid)
	}
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, s, is(sdk.EventSessionReady))
	send(t, s, sdk.InputTurn, "hello from the host")
	if text, _ := deltaText(readUntil(t, s, turnDone())); text != "hello from the host" {
		t.Errorf("turn output %q", text)
	}
	// A session left with a running turn: Stop closes it.
	busy := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	send(t, busy, sdk.InputTurn, "SLEEP_MS=60000")
	readUntil(t, busy, is(sdk.EventTurnStarted))

	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	checkClosedByPlugin(t, readUntil(t, busy, is(sdk.EventExited)))
	select {
	case <-p.Done():
	default:
		t.Error("Done is open after Stop")
	}
	// Stop detached: the developer's process runs on, and only it (the
	// sessions' children were closed with them).
	if alive := e.procs.Alive(); len(alive) != 1 || alive[0] != d.cmd.Process.Pid {
		t.Fatalf("after Stop, want only the debug plugin (pid %d) alive, got %v", d.cmd.Process.Pid, alive)
	}

	// The next host run attaches to the same process.
	again := e.attach(d.info)
	s2 := e.open(again, sdk.SessionConfig{CLIName: "echo"})
	send(t, s2, sdk.InputTurn, "SLEEP_MS=60000")
	readUntil(t, s2, is(sdk.EventTurnStarted))

	// Ctrl-C ends the plugin cleanly: sessions closed, status 0, socket gone.
	if code := d.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit status %d after SIGINT; stderr:\n%s", code, d.stderr)
	}
	checkClosedByPlugin(t, readUntil(t, s2, is(sdk.EventExited)))
	select {
	case <-again.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done was not closed when the debug plugin exited")
	}
	if _, err := os.Stat(d.info.Addr.String); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket %s is left behind: %v", d.info.Addr.String, err)
	}
	if err := again.Stop(time.Second); err != nil {
		t.Errorf("stop after the plugin exited: %v", err)
	}
	if alive := e.procs.WaitGone(5 * time.Second); len(alive) > 0 {
		t.Errorf("processes left: %v", alive)
	}
}

func TestDebugModeFromTheEnvironmentStopsOnSIGTERM(t *testing.T) {
	e := newEnv(t)
	d := startDebug(t, e, build(t, "echo"), nil, sdk.DebugEnv+"=1")
	p := e.attach(d.info)
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, s, is(sdk.EventSessionReady))
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM; stderr:\n%s", code, d.stderr)
	}
	if evs := readUntil(t, s, is(sdk.EventExited)); evs[len(evs)-1].Exited.Reason != sdk.ExitClosed {
		t.Errorf("session ended with %+v, want Exited(closed) from the plugin", evs[len(evs)-1].Exited)
	}
}

func TestAttachRefusesWhatItCannotUse(t *testing.T) {
	e := newEnv(t)
	d := startDebug(t, e, build(t, "echo"), []string{"--debug"})
	cases := []struct {
		name string
		edit func(*client.ReattachInfo)
		want error
		says string
	}{
		{"a pid that does not serve the socket", func(i *client.ReattachInfo) { i.Pid = os.Getpid() },
			client.ErrNotAttachable, "not by pid"},
		{"a socket that is gone", func(i *client.ReattachInfo) { i.Addr.String += "-gone" },
			client.ErrNotAttachable, "start it again with --debug"},
		{"a TCP address", func(i *client.ReattachInfo) { i.Addr = client.ReattachAddr{Network: "tcp", String: "127.0.0.1:1"} },
			client.ErrNotAttachable, "unix socket"},
		{"a protocol version this host does not speak", func(i *client.ReattachInfo) { i.ProtocolVersion = 99 },
			client.ErrProtocolMismatch, "version 99"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := d.info
			tc.edit(&info)
			_, err := client.Attach(context.Background(), info, client.Config{Logger: e.log})
			var le *client.LaunchError
			if !errors.Is(err, tc.want) || !errors.As(err, &le) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("attach: %v; want a *LaunchError wrapping %v that says %q", err, tc.want, tc.says)
			}
		})
	}
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if _, err := client.Attach(context.Background(), d.info, client.Config{Logger: e.log}); !errors.Is(err, client.ErrNotAttachable) {
		t.Errorf("attach to a plugin that exited: %v, want ErrNotAttachable", err)
	}
}

func TestAHostNeverStartsAPluginInDebugMode(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(build(t, "echo"))
	cfg.Env = append(cfg.Env, sdk.DebugEnv+"=1")
	p, err := client.Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("launch with %s=1 in the environment: %v", sdk.DebugEnv, err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestParseReattachSaysWhatIsWrong(t *testing.T) {
	if _, err := client.ParseReattach("{not json"); err == nil || !strings.Contains(err.Error(), sdk.ReattachEnv) {
		t.Errorf("err = %v, want one naming %s", err, sdk.ReattachEnv)
	}
	t.Setenv(sdk.ReattachEnv, "")
	if m, err := client.ReattachFromEnv(); m != nil || err != nil {
		t.Errorf("unset variable: %v, %v", m, err)
	}
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
