package backend

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The manager with plugins installed by host/pluginstore: what it launches,
// and what it refuses to launch, from a plugin directory.

func echoBinary(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
}

func futureBinary(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/future", "plugins/tthost-backend-future")
}

// installFixture is a built-in directory holding the one-shot plugin and a
// plugin directory that does not exist yet; every plugin process it starts
// is tagged, so the test fails if one is left running.
type installFixture struct {
	t       *testing.T
	builtin string
	dir     string
	env     []string
}

func newInstallFixture(t *testing.T) *installFixture {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	return &installFixture{t: t, builtin: pluginDir(t, false), dir: filepath.Join(t.TempDir(), "plugins"),
		env: []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}}
}

func (fx *installFixture) mustInstall(file string) *pluginstore.Installed {
	fx.t.Helper()
	builtins, err := pluginstore.Discover(fx.builtin)
	if err != nil {
		fx.t.Fatal(err)
	}
	res, err := pluginstore.Install(context.Background(), pluginstore.InstallOptions{Dir: fx.dir, File: file, Builtins: builtins,
		Launch: pluginstore.LaunchOptions{Env: fx.env}})
	if err != nil {
		fx.t.Fatalf("install %s: %v", file, err)
	}
	return res
}

func (fx *installFixture) manager() *Manager {
	fx.t.Helper()
	return newManager(fx.t, fx.builtin, fx.dir)
}

// An installed plugin that declares persistent for its CLI serves agents
// of that CLI that ask for persistence, and it negotiated protocol 1.
func TestAnInstalledPersistentPluginServesItsCLI(t *testing.T) {
	fx := newInstallFixture(t)
	res := fx.mustInstall(echoBinary(t))
	if res.Entry.Protocol != 1 {
		t.Errorf("recorded protocol %d; the echo plugin speaks 1", res.Entry.Protocol)
	}
	m := fx.manager()
	ch, err := m.Select(context.Background(), Want{CLI: "echo", Persistent: true})
	if err != nil || ch.Backend != "echo" || !ch.Persistent || ch.Fallback || !ch.Has(sdk.CapSteer) {
		t.Fatalf("choice %+v (%v); want the installed echo plugin, persistent", ch, err)
	}
	p, err := m.Plugin(context.Background(), ch.Instance)
	if err != nil || p.Description().ProtocolVersion != 1 {
		t.Fatalf("plugin %v (%v); want protocol 1 negotiated", p, err)
	}
	ch, err = m.Select(context.Background(), Want{CLI: "claude", Persistent: true})
	if err != nil || ch.Backend != pluginstore.OneShot || !ch.Fallback {
		t.Errorf("choice for claude %+v (%v); want the one-shot fallback", ch, err)
	}
}

func TestAManagerServesOnTheBuiltInsWhenThePluginLockIsCorrupt(t *testing.T) {
	fx := newInstallFixture(t)
	fx.mustInstall(echoBinary(t))
	if w := fx.manager().Warnings(); len(w) != 0 {
		t.Fatalf("warnings %q with a good lock file", w)
	}
	lock := filepath.Join(fx.dir, pluginstore.LockFile)
	if err := os.WriteFile(lock, []byte("{ not json"), 0o644); err != nil {
		t.Fatal(err)
	}

	m := fx.manager()
	if w := m.Warnings(); len(w) != 1 || !strings.Contains(w[0], lock) {
		t.Fatalf("Warnings() = %q; want one naming %s", w, lock)
	}
	ctx := context.Background()
	for _, want := range []Want{{CLI: "echo", Persistent: true}, {CLI: "echo", Backend: "echo"}, {CLI: "claude"}} {
		ch, err := m.Select(ctx, want)
		if err != nil || ch.Backend != pluginstore.OneShot {
			t.Fatalf("Select(%+v) = %+v, %v; want the one-shot backend", want, ch, err)
		}
		if len(ch.Warnings) != 1 || ch.Warnings[0] != m.Warnings()[0] {
			t.Errorf("Select(%+v) warnings %q; want the manager's", want, ch.Warnings)
		}
	}
}

// A plugin directory, a binary or the lock file that someone else could
// write is refused at every launch, not only at install (host/pluginstore
// tests the install side and a binary owned by another user).
func TestUnsafePermissionsAreRefusedAtEveryLaunch(t *testing.T) {
	fx := newInstallFixture(t)
	res := fx.mustInstall(echoBinary(t))
	versionDir := filepath.Dir(res.Path)
	for _, path := range []string{res.Path, versionDir, filepath.Join(fx.dir, "echo"), fx.dir, filepath.Join(fx.dir, pluginstore.LockFile)} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			chmod(t, path, fi.Mode().Perm()|0o020)
			defer chmod(t, path, fi.Mode().Perm())
			m := fx.manager()
			_, err = m.Plugin(context.Background(), "echo")
			if !errors.Is(err, pluginstore.ErrUnsafePermissions) || !strings.Contains(err.Error(), "chmod go-w "+path) {
				t.Fatalf("launch with %s group-writable: %v", path, err)
			}
			ch, err := m.Select(context.Background(), Want{CLI: "echo", Persistent: true})
			if err != nil || ch.Backend != pluginstore.OneShot || !strings.Contains(ch.Reason, "unsafe permissions") {
				t.Errorf("choice %+v (%v); want the one-shot fallback saying why", ch, err)
			}
		})
	}

	m := fx.manager()
	if _, err := m.Plugin(context.Background(), "echo"); err != nil {
		t.Fatalf("with the permissions restored: %v", err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLaunchRefusesATamperedInstalledBinary(t *testing.T) {
	fx := newInstallFixture(t)
	res := fx.mustInstall(echoBinary(t))
	f, err := os.OpenFile(res.Path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("tampered"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = fx.manager().Plugin(context.Background(), "echo")
	if !errors.Is(err, client.ErrChecksumMismatch) || !strings.Contains(err.Error(), "refusing to run it") {
		t.Fatalf("launch of a tampered binary: %v", err)
	}
}

// A plugin recorded by hand (or by a tthost that spoke protocol 2) that
// speaks only protocol 2 is refused at launch, naming both versions.
func TestLaunchOfAFutureProtocolPluginNamesBothVersions(t *testing.T) {
	fx := newInstallFixture(t)
	src := futureBinary(t)
	rel := filepath.Join("future", "1.0.0", "tthost-backend-future_v1.0.0_p2_"+runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(filepath.Join(fx.dir, filepath.Dir(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	sdktest.CopyFile(t, src, filepath.Join(fx.dir, rel), 0o755)
	lock := pluginstore.Lock{Format: 1, Plugins: []pluginstore.LockEntry{{Name: "future", Version: "1.0.0", Protocol: 2, OS: runtime.GOOS,
		Arch: runtime.GOARCH, Path: rel, SHA256: hex.EncodeToString(sdktest.SHA256File(t, src)),
		CLIs: []pluginstore.LockCLI{{Name: "future"}}, Source: src}}}
	b, _ := json.Marshal(lock)
	if err := os.WriteFile(filepath.Join(fx.dir, pluginstore.LockFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := fx.manager().Plugin(context.Background(), "future")
	if !errors.Is(err, client.ErrProtocolMismatch) {
		t.Fatalf("err = %v; want ErrProtocolMismatch", err)
	}
	for _, s := range []string{"protocol version 2", "this host speaks version 1", "upgrade tthost to a release that speaks protocol 2"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
}
