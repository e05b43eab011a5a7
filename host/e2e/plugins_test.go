package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// TestAnInstalledPluginServesAgents is the third-party path end to end: a
// plugin built only against sdk/ (the echo test plugin, which declares
// persistent sessions for CLI "echo") is installed with `tthost plugin
// install`, serves an agent through `tthost agent-loop`, and is refused
// once its installed binary is tampered with.
func TestAnInstalledPluginServesAgents(t *testing.T) {
	e := newEnv(t)
	pluginDir := filepath.Join(e.dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "TTHOST_PLUGIN_DIR="+pluginDir)
	e.cfg.Agent.Persistent = true
	e.cfg.AgentCLIs["echo"] = config.AgentCLI{Name: "echo", Command: "cat"}
	e.saveConfig()

	echo := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
	if p := e.tthost("", "plugin", "install", echo); p.wait(t, long) != 0 {
		t.Fatalf("install failed:\n%s", p.out.String())
	}

	a, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: "echoer", CLI: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	e.send(a.ID, "HELLO_THROUGH_AN_INSTALLED_PLUGIN")
	if code := e.agentLoop(a, 1).wait(t, long); code != 0 {
		t.Fatalf("agent-loop exit %d", code)
	}
	ev := e.waitEvent(a.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "persistent session through the echo backend") {
		t.Errorf("backend choice %q; want the installed echo plugin", ev.Message)
	}
	e.waitEvent(a.ID, long, "the turn completed by the plugin", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.Contains(ev.Message, "echoed")
	})
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}

	// Tamper with the installed binary: verify fails, and the next worker
	// refuses the plugin and says so instead of running it.
	bins, _ := filepath.Glob(filepath.Join(pluginDir, "echo", "*", "tthost-backend-echo_*"))
	if len(bins) != 1 {
		t.Fatalf("installed binaries %v; want one", bins)
	}
	f, err := os.OpenFile(bins[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0})
	_ = f.Close()
	if p := e.tthost("", "plugin", "verify"); p.wait(t, long) == 0 || !strings.Contains(p.out.String(), "MISMATCH") {
		t.Errorf("verify after tampering did not fail:\n%s", p.out.String())
	}
	b, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: "second", CLI: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	e.send(b.ID, "AFTER_TAMPERING")
	if code := e.agentLoop(b, 1).wait(t, long); code != 0 {
		t.Fatalf("agent-loop exit %d", code)
	}
	ev = e.waitEvent(b.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "falling back to a one-shot") || !strings.Contains(strings.ToLower(ev.Message), "checksum") {
		t.Errorf("backend choice after tampering %q; want a one-shot fallback naming the checksum", ev.Message)
	}
}

// TestAWorkerAttachesToAPluginInDebugMode: an author runs a plugin by hand
// with --debug (as under a debugger) and starts a worker with the line it
// printed; the worker's turns go to that process, which is not installed
// anywhere, and it keeps running when the worker ends.
func TestAWorkerAttachesToAPluginInDebugMode(t *testing.T) {
	e := newEnv(t)
	e.cfg.Agent.Persistent = true
	e.cfg.AgentCLIs["echo"] = config.AgentCLI{Name: "echo", Command: "cat"}
	e.saveConfig()
	echo := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
	d := sdktest.StartDebugPlugin(t, echo, e.procs.Env())
	e.extraEnv = append(e.extraEnv, sdk.ReattachEnv+"="+d.Reattach)

	a, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: "debugged", CLI: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	e.send(a.ID, "HELLO_DEBUGGER")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("agent-loop exit %d", code)
	}
	ev := e.waitEvent(a.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "persistent session through the echo backend") {
		t.Errorf("backend choice %q; want the echo plugin in debug mode", ev.Message)
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 {
		t.Errorf("rounds %d, want 1", got.RoundsCompleted)
	}
	if !strings.Contains(p.out.String(), "attached to plugin in debug mode") {
		t.Errorf("the worker's log does not say it attached:\n%s", p.out.String())
	}
	select {
	case <-d.Exited:
		t.Error("the plugin in debug mode exited with the worker; it must keep running for the next one")
	default:
	}
}

// TestACorruptLockFileStopsNoAgent: a plugins.lock.json that does not parse
// used to make every agent-loop of the town exit. Now a one-shot agent
// does its work, and its events say that the installed plugins are left
// out and how to fix it.
func TestACorruptLockFileStopsNoAgent(t *testing.T) {
	e := newEnv(t)
	pluginDir := filepath.Join(e.dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(pluginDir, "plugins.lock.json")
	if err := os.WriteFile(lock, []byte(`{"format": 1, "plugins": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "TTHOST_PLUGIN_DIR="+pluginDir)

	a := e.agent("unbothered")
	e.send(a.ID, "work despite the lock file")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("agent-loop exit %d:\n%s", code, p.out.String())
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}
	ev := e.waitEvent(a.ID, long, "plugin directory warning", func(ev *town.TownEvent) bool {
		return ev.Scope == "tthost.plugin_dir_unusable"
	})
	if ev.Type != town.EventAgentRuntimeError {
		t.Errorf("warning event type %s, want %s", ev.Type, town.EventAgentRuntimeError)
	}
	for _, want := range []string{lock, "tthost plugin verify", "tthost plugin install"} {
		if !strings.Contains(ev.Message, want) {
			t.Errorf("warning %q does not say %q", ev.Message, want)
		}
	}
	ev = e.waitEvent(a.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "oneshot") {
		t.Errorf("backend choice %q; want the one-shot backend", ev.Message)
	}
}
