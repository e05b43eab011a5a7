package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk/sdktest"
)

func echoPlugin(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
}

// anyPlugin describes itself from TTHOST_TESTPLUGIN_* (see
// host/pluginstore/internal/anyplugin), so one binary plays many plugins.
func anyPlugin(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/host/pluginstore/internal/anyplugin", "plugins/tthost-backend-any")
}

// pluginTown is a town without Redis whose tthost executable sits in a
// built-in directory holding the one-shot plugin and its manifest, and
// whose plugin directory ($TTHOST_PLUGIN_DIR) does not exist yet.
type pluginTown struct {
	*testTown
	builtin string
	dir     string
}

func newPluginTown(t *testing.T) *pluginTown {
	t.Helper()
	tt := newBareTown(t)
	builtin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(builtin, 0o755); err != nil {
		t.Fatal(err)
	}
	oneshot := sdktest.Build(t, "github.com/tthost/tthost/plugins/oneshot", "plugins/tthost-backend-oneshot")
	sdktest.CopyFile(t, oneshot, filepath.Join(builtin, "tthost-backend-oneshot"), 0o755)
	sdktest.WriteChecksums(t, builtin, pluginstore.ChecksumFile, "tthost-backend-oneshot")
	tt.exe = filepath.Join(builtin, "tthost")
	dir := filepath.Join(t.TempDir(), "plugins")
	tt.env[PluginDirEnv] = dir
	// Race-built plugins would otherwise each take a second to exit.
	tt.procEnv = append(tt.procEnv, "GORACE=atexit_sleep_ms=0")
	return &pluginTown{testTown: tt, builtin: builtin, dir: dir}
}

// withAnyPlugin runs a command with the anyplugin binary describing itself
// as name@version serving clis.
func (pt *pluginTown) withAnyPlugin(name, version, clis string, args ...string) result {
	pt.t.Helper()
	saved := pt.procEnv
	pt.procEnv = append(slices.Clone(saved), "TTHOST_TESTPLUGIN_NAME="+name, "TTHOST_TESTPLUGIN_VERSION="+version, "TTHOST_TESTPLUGIN_CLIS="+clis)
	defer func() { pt.procEnv = saved }()
	return pt.run(args...)
}

func sha256Hex(t *testing.T, path string) string {
	return hex.EncodeToString(sdktest.SHA256File(t, path))
}

func TestPluginInstallListDescribeVerifyRemove(t *testing.T) {
	pt := newPluginTown(t)
	src := echoPlugin(t)
	sum := sha256Hex(t, src)
	installed := filepath.Join(pt.dir, "echo", "1.2.3", "tthost-backend-echo_v1.2.3_p1_"+runtime.GOOS+"_"+runtime.GOARCH)

	out := pt.run("plugin", "install", src).ok(t)
	mustContain(t, out, "Installed echo 1.2.3 (protocol 1)", "echo [persistent, steer, interrupt, resume], * (any CLI)",
		"SHA-256: "+sum, "Path:    "+installed, "Source:  "+src)
	mustContain(t, pt.run("plugin", "install", src).ok(t), "already installed", "nothing changed")

	out = pt.run("plugin", "list").ok(t)
	mustContain(t, out, "NAME", "CHECKSUM", "oneshot", "built-in", "* (any CLI) [interrupt]", "echo", "1.2.3", "installed", "ok")
	var rows []PluginRow
	if err := json.Unmarshal([]byte(pt.run("plugin", "list", "--json").ok(t)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("list --json = %+v; want echo and oneshot", rows)
	}
	echo, oneshot := rows[0], rows[1]
	if echo.Name != "echo" || echo.Source != "installed" || echo.Checksum != pluginstore.ChecksumOK || !echo.Active || echo.Version != "1.2.3" ||
		echo.Protocol != 1 || echo.SHA256 != sum || echo.Path != installed || echo.InstalledFrom != src || len(echo.CLIs) != 2 ||
		!slices.Equal(echo.CLIs[0].Capabilities, []string{"persistent", "steer", "interrupt", "resume"}) {
		t.Errorf("echo row %+v", echo)
	}
	if oneshot.Name != "oneshot" || oneshot.Source != "built-in" || oneshot.Checksum != pluginstore.ChecksumOK || oneshot.Version == "" ||
		oneshot.Protocol != 1 || len(oneshot.CLIs) != 1 || oneshot.CLIs[0].Name != "*" {
		t.Errorf("oneshot row %+v", oneshot)
	}

	out = pt.run("plugin", "describe", "echo").ok(t)
	mustContain(t, out, "echo 1.2.3", "Echoes every turn back", "Protocol: 1 (SDK", installed, sum, "persistent, steer, interrupt, resume",
		"* (any CLI)", `Options schema: {"type":"object"`)
	var desc PluginDescription
	if err := json.Unmarshal([]byte(pt.run("plugin", "describe", "echo@1.2.3", "--json").ok(t)), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.Name != "echo" || desc.Version != "1.2.3" || desc.Protocol != 1 || desc.SHA256 != sum || len(desc.CLIs) != 2 ||
		!strings.Contains(string(desc.OptionsSchema), "burst") {
		t.Errorf("describe --json = %+v", desc)
	}
	mustContain(t, pt.run("plugin", "describe", src).ok(t), "echo 1.2.3", src)
	mustContain(t, pt.run("plugin", "describe", "oneshot").ok(t), "oneshot", "* (any CLI)")
	pt.run("plugin", "describe", "nothing").fails(t, "no plugin nothing is installed", "echo, oneshot")

	out = pt.run("plugin", "verify").ok(t)
	mustContain(t, out, "ok  ", "echo", "oneshot", "All 2 plugin binaries match")

	// A changed binary: verify fails, list shows it, and it does not launch.
	f, err := os.OpenFile(installed, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("tampered")
	f.Close()
	r := pt.run("plugin", "verify")
	if r.code != 1 {
		t.Fatalf("verify of a tampered plugin exited %d, want 1: %v", r.code, r.err)
	}
	mustContain(t, r.out, "MISMATCH", "echo", "was recorded")
	r.fails(t, "1 of 2 plugin binaries failed verification")
	mustContain(t, pt.run("plugin", "list").ok(t), "MISMATCH")
	pt.run("plugin", "describe", "echo").fails(t, "does not match its recorded checksum", "refusing to run it")
	// Installing the recorded binary again puts it back, without --force.
	mustContain(t, pt.run("plugin", "install", src).ok(t), "Restored echo 1.2.3")
	pt.run("plugin", "verify").ok(t)

	out = pt.run("plugin", "remove", "echo").ok(t)
	mustContain(t, out, "Removed echo 1.2.3")
	if fileExists(filepath.Join(pt.dir, "echo")) {
		t.Error("the removed plugin's directory is left")
	}
	pt.run("plugin", "remove", "echo").fails(t, "cannot remove echo: no such plugin is installed")
	pt.run("plugin", "remove", "oneshot").fails(t, "reserved for a built-in backend", "ships with tthost and cannot be removed")

	// A missing file fails verification too.
	pt.run("plugin", "install", src).ok(t)
	if err := os.Remove(installed); err != nil {
		t.Fatal(err)
	}
	r = pt.run("plugin", "verify")
	if r.code != 1 || !strings.Contains(r.out, "missing file") {
		t.Fatalf("verify with a missing file: exit %d\n%s", r.code, r.out)
	}
	mustContain(t, pt.run("plugin", "install", src).ok(t), "Restored echo 1.2.3")
}

func TestPluginInstallFromADirectory(t *testing.T) {
	pt := newPluginTown(t)
	built := t.TempDir()
	sdktest.CopyFile(t, echoPlugin(t), filepath.Join(built, "tthost-backend-echo"), 0o755)
	if err := os.WriteFile(filepath.Join(built, "README"), []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The directory's own manifest is checked when it has one.
	if err := os.WriteFile(filepath.Join(built, pluginstore.ChecksumFile), []byte(strings.Repeat("00", 32)+"  tthost-backend-echo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pt.run("plugin", "install", built).fails(t, "0000000000", "was expected", "nothing was installed")
	sdktest.WriteChecksums(t, built, pluginstore.ChecksumFile, "tthost-backend-echo")
	mustContain(t, pt.run("plugin", "install", built).ok(t), "Installed echo 1.2.3")

	sdktest.CopyFile(t, echoPlugin(t), filepath.Join(built, "tthost-backend-echo2"), 0o755)
	pt.run("plugin", "install", built).fails(t, "2 plugin binaries", "tthost-backend-echo, tthost-backend-echo2", "name the one")
	pt.run("plugin", "install", t.TempDir()).fails(t, "no executable tthost-backend-* binary")
}

func TestPluginInstallFromAURL(t *testing.T) {
	pt := newPluginTown(t)
	body, err := os.ReadFile(echoPlugin(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	url := srv.URL + "/releases/tthost-backend-echo"

	r := pt.run("plugin", "install", url, "--ca-cert", ca)
	if r.code != 2 || hits.Load() != 0 {
		t.Fatalf("a URL without --sha256: exit %d, %d downloads; want a usage error before any download", r.code, hits.Load())
	}
	r.fails(t, "needs --sha256", "nothing was downloaded")
	pt.run("plugin", "install", url, "--sha256", "abc").fails(t, "not a SHA-256")

	wrong := strings.Repeat("ab", 32)
	pt.run("plugin", "install", url, "--sha256", wrong, "--ca-cert", ca).fails(t, "was expected", wrong, "nothing was installed")
	if fileExists(filepath.Join(pt.dir, pluginstore.LockFile)) || fileExists(filepath.Join(pt.dir, "echo")) {
		t.Error("a refused download left a lock file or a plugin")
	}
	pt.run("plugin", "install", url, "--sha256", hex.EncodeToString(sum[:])).fails(t, "certificate")
	pt.run("plugin", "install", strings.Replace(url, "https", "http", 1), "--sha256", wrong).fails(t, "https:// only")

	r = pt.run("plugin", "install", url, "--sha256", strings.ToUpper(hex.EncodeToString(sum[:])), "--ca-cert", ca)
	mustContain(t, r.ok(t), "Installed echo 1.2.3", "Source:  "+url)
	mustContain(t, r.errOut, "downloading "+url+" [", "##########", " 10%", "100%", "MiB")
	l, err := pluginstore.ReadLock(pt.dir)
	if err != nil || len(l.Plugins) != 1 || l.Plugins[0].Source != url || l.Plugins[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("lock after a URL install: %+v (%v)", l, err)
	}
}

func TestPluginInstallRefusesWhatItCannotTrust(t *testing.T) {
	pt := newPluginTown(t)
	future := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/future", "plugins/tthost-backend-future")
	pt.run("plugin", "install", future).fails(t, "cannot install "+future, "protocol version 2", "this host speaks version 1",
		"upgrade tthost to a release that speaks protocol 2", "nothing was installed")
	garbage := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/garbage", "plugins/tthost-backend-garbage")
	pt.run("plugin", "install", garbage).fails(t, "not a tthost backend plugin", "garbage: this is not a handshake")
	pt.withAnyPlugin("oneshot", "1.0.0", "*", "plugin", "install", anyPlugin(t)).fails(t, `cannot install plugin "oneshot"`, "reserved for a built-in backend")
	if fileExists(pt.dir) {
		t.Error("refused installs left the plugin directory behind")
	}

	if err := os.Mkdir(pt.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pt.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	pt.run("plugin", "install", echoPlugin(t)).fails(t, "writable by its group or by others", "chmod go-w "+pt.dir)
}

func TestPluginInstallHonoursTheConfigChoiceForAClaimedCLI(t *testing.T) {
	pt := newPluginTown(t)
	any := anyPlugin(t)
	pt.withAnyPlugin("first", "1.0.0", "aider:persistent", "plugin", "install", any).ok(t)
	pt.withAnyPlugin("second", "2.0.0", "aider:persistent", "plugin", "install", any).fails(t,
		`cannot install plugin "second": CLI already served by another plugin`, `the installed "first"`, "[agent_clis.aider]", `backend = "second"`, "--force")

	cfg := config.New(testTownName)
	cfg.AgentCLIs["aider"] = config.AgentCLI{Name: "aider", Command: "aider --yes", Backend: "second"}
	pt.writeConfig(cfg)
	mustContain(t, pt.withAnyPlugin("second", "2.0.0", "aider:persistent", "plugin", "install", any).ok(t), "Installed second 2.0.0")

	out := pt.withAnyPlugin("third", "1.0.0", "goose", "plugin", "install", any, "--json").ok(t)
	var e pluginstore.LockEntry
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Name != "third" || e.CLIs[0].Name != "goose" {
		t.Errorf("install --json = %s (%v)", out, err)
	}
	pt.withAnyPlugin("fourth", "1.0.0", "goose", "plugin", "install", any).fails(t, `the installed "third"`)
	pt.withAnyPlugin("fourth", "1.0.0", "goose", "plugin", "install", any, "--force").ok(t)
}

// A worker serves on with a corrupt lock file (pluginstore
// DiscoverUsable); the plugin commands keep reporting it as the error it
// is, naming the file, and verify exits 1.
func TestPluginCommandsReportACorruptLockFile(t *testing.T) {
	pt := newPluginTown(t)
	if err := os.MkdirAll(pt.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(pt.dir, pluginstore.LockFile)
	if err := os.WriteFile(lock, []byte("{ not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"plugin", "verify"}, {"plugin", "list"}} {
		r := pt.run(args...)
		r.fails(t, lock, "not a valid plugin lock file")
		if r.code != 1 {
			t.Errorf("%s exited %d, want 1", strings.Join(args, " "), r.code)
		}
	}
}
