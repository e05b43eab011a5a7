package backend

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// startInDebugMode runs the echo test plugin by hand with --debug, as an
// author would under a debugger, and returns its reattach entry.
func startInDebugMode(t *testing.T) (client.ReattachInfo, *sdktest.DebugPlugin) {
	t.Helper()
	bin := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
	d := sdktest.StartDebugPlugin(t, bin)
	entries, err := client.ParseReattach(d.Reattach)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := entries["echo"]
	if !ok {
		t.Fatalf("no entry for echo in %q", d.Reattach)
	}
	return info, d
}

func TestTheManagerAttachesToAPluginInDebugMode(t *testing.T) {
	info, d := startInDebugMode(t)
	// The echo plugin is not installed anywhere: the reattach entry alone
	// makes it a backend.
	m, err := New(Options{Dirs: []string{pluginDir(t, false)}, Reattach: map[string]client.ReattachInfo{"echo": info}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ch, err := m.Select(ctx, Want{CLI: "echo", Persistent: true})
	if err != nil || ch.Backend != "echo" || ch.Fallback {
		t.Fatalf("choice %+v (%v); want the echo plugin in debug mode", ch, err)
	}
	p, err := m.Plugin(ctx, ch.Instance)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() != d.Cmd.Process.Pid {
		t.Fatalf("the manager uses pid %d, not the plugin in debug mode (pid %d)", p.Pid(), d.Cmd.Process.Pid)
	}
	s, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	del, err := s.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	rec := sdktest.NewRecorder(t)
	go func() {
		for ev := range s.Events() {
			rec.Emit(ev)
		}
	}()
	rec.WaitOutput(t, del.TurnID, "hello")
	if err := s.Close(ctx, sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Closing the host detaches: the author's process runs on.
	if err := syscall.Kill(d.Cmd.Process.Pid, 0); err != nil {
		t.Errorf("the plugin in debug mode was stopped with the host: %v", err)
	}
}

func TestAPluginInDebugModeThatIsGoneIsAnErrorNotALaunch(t *testing.T) {
	info, d := startInDebugMode(t)
	_ = syscall.Kill(-d.Cmd.Process.Pid, syscall.SIGKILL)
	<-d.Exited
	m, err := New(Options{Dirs: []string{pluginDir(t, true)}, Reattach: map[string]client.ReattachInfo{"echo": info}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	_, err = m.Plugin(context.Background(), "echo")
	if err == nil || !strings.Contains(err.Error(), sdk.ReattachEnv) {
		t.Fatalf("err = %v; want an error naming %s", err, sdk.ReattachEnv)
	}
}
