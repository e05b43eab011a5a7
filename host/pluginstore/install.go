package pluginstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// BuiltinNames are the backends that ship with tthost. No installed plugin
// may take one of these names, whether or not the built-in binary is
// present, so an install can never stand in for a built-in.
var BuiltinNames = []string{OneShot, "codex"}

// Why an install or a removal was refused. Errors wrap one of these (or a
// client.Err* sentinel for a binary that does not launch); their text says
// what to do.
var (
	// ErrReservedName: the plugin is named like a built-in backend.
	ErrReservedName = errors.New("the name is reserved for a built-in backend")
	// ErrInvalidPlugin: the plugin's Describe cannot be installed (name,
	// version or protocol missing or malformed).
	ErrInvalidPlugin = errors.New("invalid plugin description")
	// ErrCLIClaimed: the plugin declares a CLI another plugin serves, and
	// config does not say which of them to use.
	ErrCLIClaimed = errors.New("CLI already served by another plugin")
	// ErrVersionInstalled: this version is installed with another binary.
	ErrVersionInstalled = errors.New("version already installed with other content")
	// ErrNotInstalled: remove found no such plugin.
	ErrNotInstalled = errors.New("no such plugin is installed")
)

// InstallOptions says what to install where.
type InstallOptions struct {
	// Dir is the plugin directory.
	Dir string
	// File is the binary to install: a local file (a URL is downloaded to
	// one first, see Fetch).
	File string
	// Source is recorded in the lock file: the path or URL the user named.
	Source string
	// SHA256, when set, must be the file's checksum.
	SHA256 []byte
	// Force replaces an installed version whose binary differs, and allows
	// a CLI that another plugin already serves.
	Force bool
	// Builtins are the built-in plugins (Discover of the directory next to
	// tthost): their names are reserved and the CLIs they declare claimed.
	Builtins []Candidate
	// Chosen maps CLI names to the backend config names for them
	// ([agent_clis.<cli>] backend). Several plugins may declare a CLI that
	// config chooses a backend for.
	Chosen map[string]string
	// Launch says how to start the plugin for its Describe.
	Launch LaunchOptions
	// Warn receives what could not be checked (optional).
	Warn func(string)
	// Now stamps installed_at (default time.Now).
	Now func() time.Time
}

// Installed is the outcome of Install.
type Installed struct {
	Entry LockEntry
	// Path is the installed binary's absolute path.
	Path string
	// Unchanged: this version was already installed with the same binary.
	Unchanged bool
	// Replaced: --force replaced this version's earlier binary.
	Replaced bool
	// Repaired: this version's binary was missing or changed on disk and
	// was put back from the same content as recorded.
	Repaired bool
}

// Install copies a plugin binary into the plugin directory and records it
// in the lock file:
//
//  1. the binary is copied into a private staging directory inside Dir
//     and hashed there (it must match SHA256 when given), so what is
//     described is what gets installed, whatever happens to File meanwhile;
//  2. the staged copy is launched with that checksum and described, then
//     stopped (a binary that is not a tthost plugin, or speaks a protocol
//     this host does not, is refused here);
//  3. its name, version and CLIs are checked against the built-ins and the
//     installed plugins, under the lock file's flock;
//  4. it is renamed into <Dir>/<name>/<version>/<binary> (mode 0755) and
//     the lock file is rewritten atomically. If that fails, the binary is
//     removed again: a failed install leaves neither file nor entry.
func Install(ctx context.Context, o InstallOptions) (_ *Installed, err error) {
	if o.Dir == "" || o.File == "" {
		return nil, errors.New("install: no plugin directory or file")
	}
	if o.Source == "" {
		o.Source = o.File
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkSourceFile(o.File); err != nil {
		return nil, err
	}
	createdRoot, err := ensurePrivateDir(dir, true)
	if err != nil {
		return nil, err
	}
	if createdRoot {
		defer func() {
			if err != nil {
				_ = os.Remove(dir) // only if still empty
			}
		}()
	}
	stage, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return nil, fmt.Errorf("stage the plugin in %s: %w", dir, err)
	}
	defer os.RemoveAll(stage)

	staged := filepath.Join(stage, BinaryPrefix+"install")
	sum, err := copyHashed(o.File, staged)
	if err != nil {
		return nil, err
	}
	if o.SHA256 != nil && !bytes.Equal(sum, o.SHA256) {
		return nil, fmt.Errorf("%w: %s has SHA-256 %x but %x was expected; nothing was installed. "+
			"Check that the file is the release you meant (a download may be incomplete or replaced)",
			client.ErrChecksumMismatch, o.Source, sum, o.SHA256)
	}
	desc, err := DescribeBinary(ctx, staged, sum, o.Launch)
	if err != nil {
		return nil, explainLaunch(o.Source, err)
	}
	entry, err := newEntry(desc, sum, o)
	if err != nil {
		return nil, err
	}
	if err := checkNotBuiltin(entry.Name, o.Builtins, "install"); err != nil {
		return nil, err
	}
	builtinCLIs := describeBuiltins(ctx, o)

	h, lock, err := acquireLock(dir)
	if err != nil {
		return nil, err
	}
	defer h.release()
	var old *LockEntry
	for i, e := range lock.Plugins {
		if e.Name == entry.Name && e.Version == entry.Version && e.OS == entry.OS && e.Arch == entry.Arch {
			old = &lock.Plugins[i]
		}
	}
	repair := old != nil && old.SHA256 == entry.SHA256
	if repair && fileHasSum(filepath.Join(dir, old.Path), sum) {
		return &Installed{Entry: *old, Path: filepath.Join(dir, old.Path), Unchanged: true}, nil
	}
	// The recorded binary itself, when the installed file went missing or
	// was changed, is put back without --force: it is what was approved.
	if old != nil && !repair && !o.Force {
		return nil, fmt.Errorf("cannot install %s: %w: it is installed (from %s) with SHA-256 %s, and this binary's is %s. "+
			"A released version must not change: give the plugin a new version, or pass --force to replace it",
			entry.Ref(), ErrVersionInstalled, old.Source, old.SHA256, entry.SHA256)
	}
	if err := checkClaims(entry, lock, builtinCLIs, o); err != nil {
		return nil, err
	}
	final := filepath.Join(dir, entry.Path)
	undo, err := place(dir, staged, final, stage)
	if err != nil {
		return nil, err
	}
	next := &Lock{}
	for _, e := range lock.Plugins {
		if old == nil || e.Ref() != old.Ref() || e.OS != old.OS || e.Arch != old.Arch {
			next.Plugins = append(next.Plugins, e)
		}
	}
	next.Plugins = append(next.Plugins, entry)
	if err := writeLock(h, next); err != nil {
		undo()
		return nil, fmt.Errorf("record %s in %s: %w; nothing was installed", entry.Ref(), filepath.Join(dir, LockFile), err)
	}
	if old != nil && old.Path != entry.Path {
		_ = os.Remove(filepath.Join(dir, old.Path))
	}
	return &Installed{Entry: entry, Path: final, Replaced: old != nil && !repair, Repaired: repair}, nil
}

// writeLock writes the lock file at the end of an install; a variable so
// a test can make it fail and prove that nothing stays installed.
var writeLock = (*lockHandle).write

// checkSourceFile refuses a source that is not a regular file, or that
// someone else could have replaced before it was copied.
func checkSourceFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot install %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("cannot install %s: not a regular file (mode %v); name the plugin binary", path, fi.Mode())
	}
	if err := checkPrivate(path, true); err != nil {
		return fmt.Errorf("cannot install %s: %w", path, err)
	}
	return nil
}

// ensurePrivateDir creates dir (mode 0755 whatever the umask) or checks
// that the existing one is safe. created says whether it was made here.
func ensurePrivateDir(dir string, follow bool) (created bool, err error) {
	err = os.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		return true, os.Chmod(dir, 0o755)
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, fmt.Errorf("create the plugin directory %s: %w", dir, err)
		}
		return ensurePrivateDir(dir, follow)
	case !errors.Is(err, os.ErrExist):
		return false, fmt.Errorf("create the plugin directory %s: %w", dir, err)
	}
	if err := checkPrivate(dir, follow); err != nil {
		return false, fmt.Errorf("refusing to install into %s: %w", dir, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return false, fmt.Errorf("plugin directory %s is not a directory", dir)
	}
	return false, nil
}

// copyHashed copies src to a new file dst (mode 0755) and returns the
// SHA-256 of what was written.
func copyHashed(src, dst string) (sum []byte, err error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("cannot install %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return nil, fmt.Errorf("stage the plugin: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("stage the plugin: %w", cerr)
		}
	}()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		return nil, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Chmod(0o755); err != nil {
		return nil, fmt.Errorf("stage the plugin: %w", err)
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("stage the plugin: %w", err)
	}
	return h.Sum(nil), nil
}

func fileHasSum(path string, sum []byte) bool {
	got, err := FileSHA256(path)
	return err == nil && bytes.Equal(got, sum)
}

// explainLaunch turns a failed launch of the staged binary into an install
// error about what the user named (the staged path means nothing to them).
func explainLaunch(source string, err error) error {
	var le *client.LaunchError
	if errors.As(err, &le) {
		err = le.Err
	}
	switch {
	case errors.Is(err, client.ErrNotAPlugin), errors.Is(err, client.ErrStdoutPollution), errors.Is(err, client.ErrStartTimeout),
		errors.Is(err, client.ErrNotExecutable):
		return fmt.Errorf("cannot install %s: it is not a tthost backend plugin (%w); nothing was installed", source, err)
	case errors.Is(err, client.ErrProtocolMismatch):
		return fmt.Errorf("cannot install %s: %w; nothing was installed", source, err)
	}
	return fmt.Errorf("cannot install %s: the plugin failed to describe itself: %w; nothing was installed", source, err)
}

// newEntry builds the lock entry from what the plugin said about itself.
func newEntry(d sdk.Description, sum []byte, o InstallOptions) (LockEntry, error) {
	if !ValidName(d.Name) {
		return LockEntry{}, fmt.Errorf("cannot install %s: %w: it describes itself with name %q; a backend name is 1 to 64 lowercase letters, digits "+
			"and dashes (sdk.Description.Name): fix the plugin and rebuild it", o.Source, ErrInvalidPlugin, d.Name)
	}
	version, err := NormalizeVersion(d.Version)
	if err != nil {
		return LockEntry{}, fmt.Errorf("cannot install plugin %q: %w: its version %v (sdk.Description.Version): fix the plugin and rebuild it",
			d.Name, ErrInvalidPlugin, err)
	}
	if d.ProtocolVersion < 1 {
		return LockEntry{}, fmt.Errorf("cannot install plugin %q: %w: it reports protocol version %d; build it with the tthost SDK, which fills it in",
			d.Name, ErrInvalidPlugin, d.ProtocolVersion)
	}
	if len(d.CLIs) == 0 {
		return LockEntry{}, fmt.Errorf("cannot install plugin %q: %w: it declares no CLI, so it would serve no agent: list its CLIs in sdk.Description.CLIs",
			d.Name, ErrInvalidPlugin)
	}
	e := LockEntry{
		Name:        d.Name,
		Version:     version,
		Protocol:    d.ProtocolVersion,
		OS:          runtime.GOOS,
		Arch:        runtime.GOARCH,
		SHA256:      hex.EncodeToString(sum),
		SDKVersion:  d.SDKVersion,
		Summary:     d.Summary,
		InstalledAt: o.Now().UTC().Truncate(time.Second),
		Source:      o.Source,
	}
	e.Path = filepath.Join(e.Name, e.Version, fmt.Sprintf("%s%s_v%s_p%d_%s_%s", BinaryPrefix, e.Name, e.Version, e.Protocol, e.OS, e.Arch))
	for _, c := range d.CLIs {
		if c.Name == "" {
			return LockEntry{}, fmt.Errorf("cannot install plugin %q: %w: it declares a CLI without a name", d.Name, ErrInvalidPlugin)
		}
		e.CLIs = append(e.CLIs, LockCLI{Name: c.Name, Capabilities: append([]sdk.Capability{}, c.Capabilities...)})
	}
	return e, nil
}

// checkNotBuiltin refuses a built-in backend's name.
func checkNotBuiltin(name string, builtins []Candidate, verb string) error {
	reserved := slices.Contains(BuiltinNames, name)
	for _, b := range builtins {
		reserved = reserved || b.Name == name
	}
	if !reserved {
		return nil
	}
	if verb == "install" {
		return fmt.Errorf("cannot install plugin %q: %w: %q is built into tthost and no plugin may stand in for it; "+
			"rename the plugin (sdk.Description.Name) and rebuild it", name, ErrReservedName, name)
	}
	return fmt.Errorf("cannot remove %q: %w: it ships with tthost and cannot be removed", name, ErrReservedName)
}

// describeBuiltins learns which CLIs the built-in plugins declare, by
// launching each. One that does not start is reported through Warn, not
// fatal: it cannot serve agents anyway.
func describeBuiltins(ctx context.Context, o InstallOptions) map[string][]string {
	claims := map[string][]string{}
	for _, b := range o.Builtins {
		if b.Checksum == nil {
			continue
		}
		d, err := DescribeBinary(ctx, b.Path, b.Checksum, o.Launch)
		if err != nil {
			if o.Warn != nil {
				o.Warn(fmt.Sprintf("could not ask the built-in %s backend which CLIs it serves: %v", b.Name, err))
			}
			continue
		}
		for _, c := range d.CLIs {
			claims[c.Name] = append(claims[c.Name], b.Name)
		}
	}
	return claims
}

// checkClaims refuses a plugin that declares a CLI another plugin serves
// (the "*" fallback aside), unless config chooses a backend for that CLI
// or the install is forced: otherwise which one serves the CLI would
// depend on names, not on anyone's decision.
func checkClaims(e LockEntry, lock *Lock, builtinCLIs map[string][]string, o InstallOptions) error {
	if o.Force {
		return nil
	}
	var problems []string
	for _, c := range e.CLIs {
		if c.Name == sdk.AnyCLI || o.Chosen[c.Name] != "" {
			continue
		}
		var others []string
		for _, b := range builtinCLIs[c.Name] {
			others = append(others, fmt.Sprintf("the built-in %q", b))
		}
		for _, other := range lock.Plugins {
			if other.Name == e.Name {
				continue
			}
			if slices.ContainsFunc(other.CLIs, func(oc LockCLI) bool { return oc.Name == c.Name }) {
				s := fmt.Sprintf("the installed %q", other.Name)
				if !slices.Contains(others, s) {
					others = append(others, s)
				}
			}
		}
		if len(others) == 0 {
			continue
		}
		problems = append(problems, fmt.Sprintf("CLI %q is already served by %s; choose its backend in tinytown.toml with\n"+
			"    [agent_clis.%s]\n    backend = %q   (or the other plugin's name)",
			c.Name, strings.Join(others, " and "), c.Name, e.Name))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("cannot install plugin %q: %w:\n  %s\nthen install again; or pass --force to install it anyway "+
		"(without a choice in config, the persistent backend for such a CLI is the first by name)",
		e.Name, ErrCLIClaimed, strings.Join(problems, "\n  "))
}

// place renames the staged binary to final, creating its directories
// (mode 0755) and moving an earlier binary at final aside into stage. undo
// puts everything back.
func place(dir, staged, final, stage string) (undo func(), err error) {
	var created []string
	p := dir
	rel, _ := filepath.Rel(dir, filepath.Dir(final))
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		made, err := ensurePrivateDir(p, false)
		if made {
			created = append(created, p)
		}
		if err != nil {
			removeDirs(created)
			return nil, err
		}
	}
	backup := ""
	if _, err := os.Lstat(final); err == nil {
		backup = filepath.Join(stage, "previous")
		if err := os.Rename(final, backup); err != nil {
			removeDirs(created)
			return nil, fmt.Errorf("move the earlier %s aside: %w", final, err)
		}
	}
	if err := os.Rename(staged, final); err != nil {
		if backup != "" {
			_ = os.Rename(backup, final)
		}
		removeDirs(created)
		return nil, fmt.Errorf("install %s: %w", final, err)
	}
	syncDir(filepath.Dir(final))
	return func() {
		_ = os.Remove(final)
		if backup != "" {
			_ = os.Rename(backup, final)
		}
		removeDirs(created)
	}, nil
}

// removeDirs removes directories made for an install, deepest first; a
// directory that is not empty stays.
func removeDirs(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

// Remove removes an installed plugin from dir: the version given, or every
// version when version is "". The lock entries go first, so an interrupted
// removal leaves at worst an unreferenced file, never an entry without its
// binary. Built-in backends cannot be removed.
func Remove(dir, name, version string, builtins []Candidate) ([]LockEntry, error) {
	if err := checkNotBuiltin(name, builtins, "remove"); err != nil {
		return nil, err
	}
	if version != "" {
		v, err := NormalizeVersion(version)
		if err != nil {
			return nil, fmt.Errorf("remove %s@%s: %w", name, version, err)
		}
		version = v
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot remove %s: %w: the plugin directory %s does not exist", name, ErrNotInstalled, dir)
	}
	h, lock, err := acquireLock(dir)
	if err != nil {
		return nil, err
	}
	defer h.release()
	var keep, gone []LockEntry
	for _, e := range lock.Plugins {
		if e.Name == name && (version == "" || e.Version == version) {
			gone = append(gone, e)
		} else {
			keep = append(keep, e)
		}
	}
	if len(gone) == 0 {
		what := name
		if version != "" {
			what += "@" + version
		}
		return nil, fmt.Errorf("cannot remove %s: %w in %s (`tthost plugin list` shows what is)", what, ErrNotInstalled, dir)
	}
	if err := h.write(&Lock{Plugins: keep}); err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range gone {
		path := filepath.Join(dir, e.Path)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s is no longer installed but its file %s could not be removed: %w", e.Ref(), path, err))
			continue
		}
		// The version and name directories go when empty.
		for d := filepath.Dir(path); d != dir && strings.HasPrefix(d, dir+string(filepath.Separator)); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				break
			}
		}
	}
	return gone, errors.Join(errs...)
}
