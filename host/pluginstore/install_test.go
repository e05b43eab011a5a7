package pluginstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The test plugins, built once per test process.
func echoBinary(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/echo", "plugins/tthost-backend-echo")
}

func anyBinary(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/host/pluginstore/internal/anyplugin", "plugins/tthost-backend-any")
}

func futureBinary(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/future", "plugins/tthost-backend-future")
}

func garbageBinary(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/garbage", "plugins/tthost-backend-garbage")
}

// anyEnv makes the anyplugin binary describe itself as name@version
// serving clis ("aider:persistent+steer,*").
func anyEnv(name, version, clis string) []string {
	return []string{"TTHOST_TESTPLUGIN_NAME=" + name, "TTHOST_TESTPLUGIN_VERSION=" + version, "TTHOST_TESTPLUGIN_CLIS=" + clis}
}

// installFixture is a built-in directory holding the one-shot plugin, a
// plugin directory that does not exist yet, and launch options that tag
// every plugin process, so the test fails if one is left running.
type installFixture struct {
	t        *testing.T
	builtin  string
	dir      string
	launch   LaunchOptions
	builtins []Candidate
}

func newInstallFixture(t *testing.T) *installFixture {
	t.Helper()
	builtin := pluginDir(t)
	procs := sdktest.TrackProcesses(t)
	cands, err := Discover(builtin)
	if err != nil {
		t.Fatal(err)
	}
	return &installFixture{t: t, builtin: builtin, dir: filepath.Join(t.TempDir(), "plugins"), builtins: cands,
		launch: LaunchOptions{Env: []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}}}
}

// install installs file with extra environment for its Describe.
func (fx *installFixture) install(file string, env []string, edit func(*InstallOptions)) (*Installed, error) {
	fx.t.Helper()
	o := InstallOptions{Dir: fx.dir, File: file, Builtins: fx.builtins, Launch: fx.launch}
	o.Launch.Env = append(slices.Clone(fx.launch.Env), env...)
	if edit != nil {
		edit(&o)
	}
	return Install(context.Background(), o)
}

func (fx *installFixture) mustInstall(file string, env []string, edit func(*InstallOptions)) *Installed {
	fx.t.Helper()
	res, err := fx.install(file, env, edit)
	if err != nil {
		fx.t.Fatalf("install %s: %v", file, err)
	}
	return res
}

// snapshot is every file under the plugin directory with its content's
// hash (and the lock file's text), to prove a refused install changed
// nothing.
func (fx *installFixture) snapshot() map[string]string {
	fx.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(fx.dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == fx.dir {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(fx.dir, path)
		if d.IsDir() {
			out[rel+"/"] = "dir"
			return nil
		}
		out[rel] = hex.EncodeToString(sdktest.SHA256File(fx.t, path))
		if rel == LockFile {
			b, _ := os.ReadFile(path)
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		fx.t.Fatal(err)
	}
	return out
}

func TestInstallLaysOutTheBinaryAndRecordsItInTheLockFile(t *testing.T) {
	fx := newInstallFixture(t)
	src := echoBinary(t)
	before := time.Now().Add(-time.Second)
	res := fx.mustInstall(src, nil, nil)

	file := "tthost-backend-echo_v1.2.3_p1_" + runtime.GOOS + "_" + runtime.GOARCH
	if want := filepath.Join(fx.dir, "echo", "1.2.3", file); res.Path != want || res.Unchanged || res.Replaced {
		t.Fatalf("installed %+v; want path %s", res, want)
	}
	for path, mode := range map[string]os.FileMode{fx.dir: 0o755, filepath.Join(fx.dir, "echo"): 0o755,
		filepath.Join(fx.dir, "echo", "1.2.3"): 0o755, res.Path: 0o755, filepath.Join(fx.dir, LockFile): 0o644} {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v; want mode %v", path, fi.Mode(), err, mode)
		}
	}
	sum := hex.EncodeToString(sdktest.SHA256File(t, src))
	if got := hex.EncodeToString(sdktest.SHA256File(t, res.Path)); got != sum {
		t.Errorf("installed binary hashes %s, source %s", got, sum)
	}

	// The lock file, read as plain JSON: the format other tools rely on.
	raw, err := os.ReadFile(filepath.Join(fx.dir, LockFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Format  int              `json:"format"`
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Format != 1 || len(doc.Plugins) != 1 {
		t.Fatalf("lock file %s (%v)", raw, err)
	}
	p := doc.Plugins[0]
	want := map[string]any{"name": "echo", "version": "1.2.3", "protocol": float64(1), "os": runtime.GOOS, "arch": runtime.GOARCH,
		"path": filepath.Join("echo", "1.2.3", file), "sha256": sum, "sdk_version": sdk.Version, "source": src}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("lock %s = %v, want %v", k, p[k], v)
		}
	}
	clis, _ := json.Marshal(p["clis"])
	if string(clis) != `[{"capabilities":["persistent","steer","interrupt","resume"],"name":"echo"},{"capabilities":[],"name":"*"}]` {
		t.Errorf("lock clis = %s", clis)
	}
	at, err := time.Parse(time.RFC3339, p["installed_at"].(string))
	if err != nil || at.Before(before) || at.After(time.Now()) {
		t.Errorf("installed_at %v (%v)", p["installed_at"], err)
	}
	if left, _ := filepath.Glob(filepath.Join(fx.dir, ".install-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}

	again := fx.mustInstall(src, nil, nil)
	if !again.Unchanged || again.Entry.InstalledAt != res.Entry.InstalledAt {
		t.Errorf("a second install of the same binary: %+v; want unchanged", again)
	}

	cands, err := Discover(fx.builtin, fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cands, func(c Candidate) bool { return c.Name == "echo" })
	if i < 0 || cands[i].Installed == nil || cands[i].Path != res.Path || hex.EncodeToString(cands[i].Checksum) != sum {
		t.Fatalf("discovered %+v; want the installed echo", cands)
	}
}

func TestInstallRefusesAndLeavesEverythingAsItWas(t *testing.T) {
	fx := newInstallFixture(t)

	// Into a directory that does not exist yet: it is not left behind.
	if _, err := fx.install(garbageBinary(t), nil, nil); err == nil {
		t.Fatal("the garbage binary was installed")
	}
	if _, err := os.Stat(fx.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused install left the plugin directory: %v", err)
	}

	fx.mustInstall(anyBinary(t), anyEnv("keep", "1.0.0", "keep:persistent,*"), nil)
	script := filepath.Join(t.TempDir(), "tthost-backend-script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 32)
	cases := []struct {
		name string
		file string
		env  []string
		edit func(*InstallOptions)
		is   error
		says []string
	}{
		{"a checksum that does not match", echoBinary(t), nil, func(o *InstallOptions) { o.SHA256 = zeros },
			client.ErrChecksumMismatch, []string{"but " + hex.EncodeToString(zeros) + " was expected", "nothing was installed"}},
		{"a binary that prints where the handshake belongs", garbageBinary(t), nil, nil,
			client.ErrStdoutPollution, []string{"not a tthost backend plugin", "nothing was installed"}},
		{"a script that is no plugin", script, nil, nil,
			client.ErrNotAPlugin, []string{"not a tthost backend plugin"}},
		{"a plugin for a protocol this host does not speak", futureBinary(t), nil, nil,
			client.ErrProtocolMismatch, []string{"protocol version 2", "this host speaks version 1", "upgrade tthost", "protocol 1"}},
		{"a plugin named like the built-in one-shot backend", anyBinary(t), anyEnv("oneshot", "1.0.0", "*"), nil,
			ErrReservedName, []string{`cannot install plugin "oneshot"`, "built into tthost"}},
		{"a plugin named like the codex backend, built or not", anyBinary(t), anyEnv("codex", "9.0.0", "codex:persistent"), nil,
			ErrReservedName, []string{`"codex"`}},
		{"an empty name", anyBinary(t), anyEnv("", "1.0.0", "*"), nil, ErrInvalidPlugin, []string{`with name ""`}},
		{"a name that cannot be a directory", anyBinary(t), anyEnv("../up", "1.0.0", "*"), nil, ErrInvalidPlugin, []string{"lowercase letters"}},
		{"a version that is not semantic", anyBinary(t), anyEnv("dev", "dev", "*"), nil, ErrInvalidPlugin, []string{`"dev" is not a semantic version`}},
		{"no CLI at all", anyBinary(t), anyEnv("mute", "1.0.0", ""), nil, ErrInvalidPlugin, []string{"declares no CLI"}},
		{"a CLI the installed keep plugin serves", anyBinary(t), anyEnv("rival", "1.0.0", "keep"), nil, ErrCLIClaimed, []string{`"keep"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := fx.snapshot()
			_, err := fx.install(c.file, c.env, c.edit)
			if !errors.Is(err, c.is) {
				t.Fatalf("err = %v; want %v", err, c.is)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q:\n%v", s, err)
				}
			}
			if after := fx.snapshot(); !maps.Equal(before, after) {
				t.Errorf("the refused install changed the plugin directory:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestAFailedLockWriteLeavesNoFileAndNoEntry(t *testing.T) {
	fx := newInstallFixture(t)
	first := fx.mustInstall(anyBinary(t), anyEnv("tool", "1.0.0", "tool"), nil)
	before := fx.snapshot()

	writeLock = func(*lockHandle, *Lock) error { return errors.New("disk full") }
	t.Cleanup(func() { writeLock = (*lockHandle).write })

	if _, err := fx.install(anyBinary(t), anyEnv("tool", "2.0.0", "tool"), nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v; want the failed write", err)
	}
	if after := fx.snapshot(); !maps.Equal(before, after) {
		t.Errorf("a new version whose lock write failed is left:\nbefore %v\nafter  %v", before, after)
	}

	// Replacing a version (--force) puts the earlier binary back.
	changed := filepath.Join(t.TempDir(), "tthost-backend-tool")
	sdktest.CopyFile(t, anyBinary(t), changed, 0o755)
	appendBytes(t, changed, "another build")
	_, err := fx.install(changed, anyEnv("tool", "1.0.0", "tool"), func(o *InstallOptions) { o.Force = true })
	if err == nil {
		t.Fatal("the forced install succeeded despite the failed lock write")
	}
	if after := fx.snapshot(); !maps.Equal(before, after) {
		t.Errorf("a forced replacement whose lock write failed changed things:\nbefore %v\nafter  %v", before, after)
	}
	if st, _, _ := (Candidate{Path: first.Path, Checksum: first.Entry.Checksum()}).VerifyChecksum(); st != ChecksumOK {
		t.Errorf("the earlier binary was not restored: %s", st)
	}

	writeLock = (*lockHandle).write
	res, err := fx.install(changed, anyEnv("tool", "1.0.0", "tool"), nil)
	if !errors.Is(err, ErrVersionInstalled) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("changed content under an installed version: %v, %+v; want ErrVersionInstalled naming --force", err, res)
	}
	res = fx.mustInstall(changed, anyEnv("tool", "1.0.0", "tool"), func(o *InstallOptions) { o.Force = true })
	if !res.Replaced || res.Entry.SHA256 != hex.EncodeToString(sdktest.SHA256File(t, changed)) {
		t.Errorf("forced replacement: %+v", res)
	}
}

func appendBytes(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTheHighestInstalledVersionIsUsedAndRemoveTakesVersions(t *testing.T) {
	fx := newInstallFixture(t)
	for _, v := range []string{"1.2.0", "v1.10.0", "1.10.0-rc.1"} {
		fx.mustInstall(anyBinary(t), anyEnv("multi", v, "multi"), nil)
	}
	active := func() string {
		t.Helper()
		cands, err := Discover(fx.builtin, fx.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cands {
			if c.Name == "multi" {
				return c.Installed.Version
			}
		}
		return ""
	}
	if v := active(); v != "1.10.0" {
		t.Fatalf("active version %q; want 1.10.0, the highest", v)
	}
	all, err := List(fx.builtin, fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l.Name == "multi" && !l.Active && !strings.Contains(l.Note, "1.10.0 is installed too and is newer") {
			t.Errorf("%s: note %q", l.Installed.Version, l.Note)
		}
	}

	gone, err := Remove(fx.dir, "multi", "v1.10.0", fx.builtins)
	if err != nil || len(gone) != 1 || gone[0].Version != "1.10.0" {
		t.Fatalf("remove multi@1.10.0: %+v, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(fx.dir, "multi", "1.10.0")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the removed version's directory is left: %v", err)
	}
	if v := active(); v != "1.10.0-rc.1" {
		t.Fatalf("active version %q after removing 1.10.0; want 1.10.0-rc.1", v)
	}
	if _, err := Remove(fx.dir, "multi", "3.0.0", fx.builtins); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("remove of a version not installed: %v", err)
	}
	if gone, err = Remove(fx.dir, "multi", "", fx.builtins); err != nil || len(gone) != 2 {
		t.Fatalf("remove every version: %+v, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(fx.dir, "multi")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the removed plugin's directory is left: %v", err)
	}
	if l, err := ReadLock(fx.dir); err != nil || len(l.Plugins) != 0 {
		t.Errorf("lock after removing everything: %+v, %v", l, err)
	}
	for _, name := range []string{OneShot, "codex"} {
		if _, err := Remove(fx.dir, name, "", fx.builtins); !errors.Is(err, ErrReservedName) || !strings.Contains(err.Error(), "cannot be removed") {
			t.Errorf("remove %s: %v; want a refusal", name, err)
		}
	}
}

func TestASecondPluginForAClaimedCLINeedsAChoiceInConfigOrForce(t *testing.T) {
	fx := newInstallFixture(t)
	fx.mustInstall(anyBinary(t), anyEnv("first", "1.0.0", "aider:persistent,*"), nil)

	_, err := fx.install(anyBinary(t), anyEnv("second", "1.0.0", "aider:persistent,other,*"), nil)
	for _, s := range []string{`cannot install plugin "second"`, `the installed "first"`, `CLI "aider"`, "[agent_clis.aider]", `backend = "second"`, "--force"} {
		if !errors.Is(err, ErrCLIClaimed) || !strings.Contains(err.Error(), s) {
			t.Errorf("err does not say %q: %v", s, err)
		}
	}
	fx.mustInstall(anyBinary(t), anyEnv("second", "1.0.0", "aider:persistent,other,*"), func(o *InstallOptions) {
		o.Chosen = map[string]string{"aider": "first"}
	})
	fx.mustInstall(anyBinary(t), anyEnv("third", "1.0.0", "aider"), func(o *InstallOptions) { o.Force = true })
	// A new version of a plugin does not compete with its older self.
	fx.mustInstall(anyBinary(t), anyEnv("first", "1.1.0", "aider:persistent,*"), func(o *InstallOptions) {
		o.Chosen = map[string]string{"aider": "first"}
	})

	// A CLI a built-in backend declares is claimed too.
	builtin := t.TempDir()
	sdktest.CopyFile(t, echoBinary(t), filepath.Join(builtin, "tthost-backend-echo"), 0o755)
	sdktest.WriteChecksums(t, builtin, ChecksumFile, "tthost-backend-echo")
	echoBuiltins, err := Discover(builtin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fx.install(anyBinary(t), anyEnv("echo2", "1.0.0", "echo"), func(o *InstallOptions) { o.Builtins = echoBuiltins })
	if !errors.Is(err, ErrCLIClaimed) || !strings.Contains(err.Error(), `the built-in "echo"`) {
		t.Errorf("err = %v; want the built-in echo named", err)
	}
}

// A plugin directory, a binary or the lock file that someone else could
// write is refused at install, and CheckSafe, which the manager calls
// before every launch (host/backend tests that), refuses it afterwards.
func TestUnsafePermissionsAreRefusedAtInstallAndByCheckSafe(t *testing.T) {
	fx := newInstallFixture(t)
	if err := os.Mkdir(fx.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, fx.dir, 0o775)
	_, err := fx.install(echoBinary(t), nil, nil)
	if !errors.Is(err, ErrUnsafePermissions) || !strings.Contains(err.Error(), "chmod go-w "+fx.dir) {
		t.Fatalf("install into a group-writable directory: %v", err)
	}
	chmod(t, fx.dir, 0o755)

	writable := filepath.Join(t.TempDir(), "tthost-backend-echo")
	sdktest.CopyFile(t, echoBinary(t), writable, 0o755)
	chmod(t, writable, 0o757)
	if _, err := fx.install(writable, nil, nil); !errors.Is(err, ErrUnsafePermissions) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Fatalf("install of a world-writable binary: %v", err)
	}

	res := fx.mustInstall(echoBinary(t), nil, nil)
	echo := func() Candidate {
		t.Helper()
		cands, err := Discover(fx.builtin, fx.dir)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(cands, func(c Candidate) bool { return c.Name == "echo" })
		if i < 0 {
			t.Fatalf("echo not discovered: %+v", cands)
		}
		return cands[i]
	}
	versionDir := filepath.Dir(res.Path)
	for _, path := range []string{res.Path, versionDir, filepath.Join(fx.dir, "echo"), fx.dir, filepath.Join(fx.dir, LockFile)} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			chmod(t, path, fi.Mode().Perm()|0o020)
			defer chmod(t, path, fi.Mode().Perm())
			err = echo().CheckSafe()
			if !errors.Is(err, ErrUnsafePermissions) || !strings.Contains(err.Error(), "chmod go-w "+path) {
				t.Fatalf("CheckSafe with %s group-writable: %v", path, err)
			}
		})
	}

	t.Run("owned by another user", func(t *testing.T) {
		if os.Getuid() == 0 {
			if err := os.Chown(res.Path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			defer os.Chown(res.Path, 0, 0)
		} else {
			me := os.Getuid()
			getuid = func() int { return me + 1 }
			defer func() { getuid = os.Getuid }()
		}
		err := echo().CheckSafe()
		if !errors.Is(err, ErrUnsafePermissions) || !strings.Contains(err.Error(), "chown") {
			t.Fatalf("CheckSafe of a binary owned by another user: %v", err)
		}
	})

	if err := echo().CheckSafe(); err != nil {
		t.Fatalf("with the permissions restored: %v", err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// A changed installed binary is a MISMATCH for `tthost plugin verify`; the
// manager refuses to launch it (host/backend tests that).
func TestVerifyChecksumFindsATamperedInstalledBinary(t *testing.T) {
	fx := newInstallFixture(t)
	res := fx.mustInstall(echoBinary(t), nil, nil)
	appendBytes(t, res.Path, "tampered")
	cands, err := Discover(fx.builtin, fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cands {
		if c.Name == "echo" {
			if st, _, err := c.VerifyChecksum(); st != ChecksumMismatch || err != nil {
				t.Errorf("checksum state %s (%v); want MISMATCH", st, err)
			}
		}
	}
}

// Concurrent writers of the lock file lose no entry: the flock serialises
// them even though each replaces the file by rename.
func TestConcurrentLockWritersLoseNothing(t *testing.T) {
	dir := t.TempDir()
	const writers = 8
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			h, l, err := acquireLock(dir)
			if err != nil {
				errs <- err
				return
			}
			defer h.release()
			e := LockEntry{Name: "p" + string(rune('a'+i)), Version: "1.0.0", Protocol: 1, OS: "linux", Arch: "amd64",
				Path: "p/1.0.0/tthost-backend-p", SHA256: strings.Repeat("ab", 32)}
			l.Plugins = append(l.Plugins, e)
			errs <- h.write(l)
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	l, err := ReadLock(dir)
	if err != nil || len(l.Plugins) != writers {
		t.Fatalf("lock has %d entries (%v); want %d", len(l.Plugins), err, writers)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestCheckPrivateNamesTheFix(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := checkPrivate(link, false); !errors.Is(err, ErrUnsafePermissions) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a symlink inside the layout: %v", err)
	}
	if err := checkPrivate(link, true); err != nil {
		t.Errorf("the plugin directory itself may be a symlink: %v", err)
	}
}
