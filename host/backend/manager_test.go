package backend

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// pluginDir builds the one-shot plugin and, optionally, the echo test
// plugin (which declares persistent sessions for CLI "echo") into a fresh
// directory with a checksum manifest.
func pluginDir(t *testing.T, withEcho bool) string {
	t.Helper()
	dir := t.TempDir()
	oneshot := sdktest.Build(t, "github.com/tthost/tthost/plugins/oneshot", "plugins/tthost-backend-oneshot")
	sdktest.CopyFile(t, oneshot, filepath.Join(dir, "tthost-backend-oneshot"), 0o755)
	names := []string{"tthost-backend-oneshot"}
	if withEcho {
		echo := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
		sdktest.CopyFile(t, echo, filepath.Join(dir, "tthost-backend-echo"), 0o755)
		names = append(names, "tthost-backend-echo")
	}
	sdktest.WriteChecksums(t, dir, pluginstore.ChecksumFile, names...)
	return dir
}

func newManager(t *testing.T, dirs ...string) *Manager {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	m, err := New(Options{Dirs: dirs, Env: []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}, StopGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m
}

func TestNewNeedsTheOneShotBackend(t *testing.T) {
	_, err := New(Options{Dirs: []string{t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("err = %v; want one that says how to build the one-shot backend", err)
	}
}

func TestSelectChoosesAndSaysWhy(t *testing.T) {
	m := newManager(t, pluginDir(t, true))
	ctx := context.Background()
	cases := []struct {
		name       string
		cli        string
		persistent bool
		backend    string
		fallback   bool
		reason     string
	}{
		{"one-shot when persistence is off", "echo", false, pluginstore.OneShot, false, "one-shot subprocess per turn"},
		{"the persistent plugin for its CLI", "echo", true, "echo", false, "persistent session through the echo backend"},
		{"one-shot fallback for a CLI no plugin keeps alive", "claude", true, pluginstore.OneShot, true, `no backend plugin declares persistent sessions for "claude"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := m.Select(ctx, Want{CLI: c.cli, Persistent: c.persistent})
			if err != nil {
				t.Fatal(err)
			}
			if ch.Backend != c.backend || ch.Fallback != c.fallback || !strings.Contains(ch.Reason, c.reason) {
				t.Errorf("choice %+v; want backend %s fallback %v reason containing %q", ch, c.backend, c.fallback, c.reason)
			}
			if c.backend == "echo" && !ch.Has(sdk.CapSteer) {
				t.Errorf("the choice lost the CLI's capabilities: %+v", ch.CLI)
			}
		})
	}
}

func TestAPluginWithoutARecordedChecksumIsRefused(t *testing.T) {
	dir := pluginDir(t, false)
	sdktest.CopyFile(t, filepath.Join(dir, "tthost-backend-oneshot"), filepath.Join(dir, "tthost-backend-extra"), 0o755)
	m := newManager(t, dir)
	_, err := m.Plugin(context.Background(), "extra")
	if !errors.Is(err, pluginstore.ErrNoChecksum) || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("err = %v; want pluginstore.ErrNoChecksum, explained", err)
	}
	ch, err := m.Select(context.Background(), Want{CLI: "claude", Persistent: true})
	if err != nil || ch.Backend != pluginstore.OneShot || !strings.Contains(ch.Reason, "plugin extra could not start") {
		t.Errorf("choice %+v (%v); want the one-shot fallback naming the refused plugin", ch, err)
	}
}

func TestACrashedPluginIsRelaunchedOnNextUse(t *testing.T) {
	m := newManager(t, pluginDir(t, false))
	ctx := context.Background()
	p1, err := m.Plugin(ctx, pluginstore.OneShot)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Plugin(ctx, pluginstore.OneShot); again != p1 {
		t.Fatal("a running plugin was launched a second time")
	}
	if err := syscall.Kill(p1.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.Done()
	p2, err := m.Plugin(ctx, pluginstore.OneShot)
	if err != nil {
		t.Fatal(err)
	}
	if p2 == p1 || p2.Pid() == p1.Pid() {
		t.Fatalf("not relaunched: pid %d then %d", p1.Pid(), p2.Pid())
	}
	s, err := m.Open(ctx, Choice{Backend: pluginstore.OneShot}, sdk.SessionConfig{CLIName: "x", Command: "true", Workdir: t.TempDir()})
	if err != nil {
		t.Fatalf("open a session on the relaunched plugin: %v", err)
	}
	if err := s.Close(ctx, sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	for range s.Events() {
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	m := &Manager{opts: Options{MaxBackoff: time.Second}}
	got := []time.Duration{m.backoff(1), m.backoff(2), m.backoff(3), m.backoff(6), m.backoff(40)}
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("backoff(%d crashes) = %v, want %v", []int{1, 2, 3, 6, 40}[i], got[i], want[i])
		}
	}
}

func TestPersistentBackendsRunOneProcessPerCLI(t *testing.T) {
	m := newManager(t, pluginDir(t, true))
	ctx := context.Background()
	echo, err := m.Select(ctx, Want{CLI: "echo", Persistent: true})
	if err != nil || echo.Instance != "echo@echo" {
		t.Fatalf("choice %+v (%v); want the instance echo@echo", echo, err)
	}
	p1, err := m.Plugin(ctx, echo.Instance)
	if err != nil {
		t.Fatal(err)
	}
	// Asking for a CLI the plugin does not keep alive uses the cached
	// description: no new process, and the probe of a new backend is
	// stopped rather than left idle.
	ch, err := m.Select(ctx, Want{CLI: "claude", Persistent: true})
	if err != nil || ch.Backend != pluginstore.OneShot {
		t.Fatalf("choice %+v (%v)", ch, err)
	}
	m.mu.Lock()
	_, probe := m.plugins["echo@claude"]
	m.mu.Unlock()
	if probe {
		t.Errorf("a plugin process was kept for a CLI it does not serve")
	}
	if again, _ := m.Plugin(ctx, echo.Instance); again != p1 {
		t.Errorf("the per-CLI instance was relaunched")
	}
}

func TestTheBackendNamedInConfigServesTheCLI(t *testing.T) {
	m := newManager(t, pluginDir(t, true))
	ctx := context.Background()
	ch, err := m.Select(ctx, Want{CLI: "my-tool", Backend: "echo"})
	if err != nil || ch.Backend != "echo" || ch.Fallback || !strings.Contains(ch.Reason, "[agent_clis.my-tool] backend") {
		t.Fatalf("choice %+v (%v); want the echo backend, by config", ch, err)
	}
	ch, err = m.Select(ctx, Want{CLI: "my-tool", Backend: "missing"})
	if err != nil || ch.Backend != pluginstore.OneShot || !ch.Fallback || !strings.Contains(ch.Reason, `no backend plugin named "missing"`) {
		t.Fatalf("choice %+v (%v); want the one-shot fallback naming the missing backend", ch, err)
	}
}

// The persistent search tries the plugin named after the CLI first, so an
// agent of claude does not start acp (which declares any CLI) to learn it
// is not the one; the others keep their order.
func TestNamedFirstTriesThePluginNamedAfterTheCLIFirst(t *testing.T) {
	order := []string{"acp", "claude", "codex", "oneshot"}
	for cli, want := range map[string][]string{
		"claude": {"claude", "acp", "codex", "oneshot"},
		"codex":  {"codex", "acp", "claude", "oneshot"},
		"gemini": {"acp", "claude", "codex", "oneshot"},
	} {
		if got := namedFirst(order, cli); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", cli, got, want)
		}
	}
	if !slices.Equal(order, []string{"acp", "claude", "codex", "oneshot"}) {
		t.Errorf("the manager's order was changed: %v", order)
	}
}
