package pluginstore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk"
)

// LockFile records the plugins installed in a plugin directory: one entry
// per installed version, with the SHA-256 the host verifies at every launch
// and what the plugin's Describe said at install. `tthost plugin install`
// and `remove` rewrite it atomically (temp file and rename) while holding
// an exclusive flock on it, so concurrent installs cannot lose an entry.
const LockFile = "plugins.lock.json"

// lockFormat is the lock file's format version. A tthost that finds a
// newer one refuses it instead of dropping what it does not understand.
const lockFormat = 1

// Lock is the content of a plugin directory's lock file.
type Lock struct {
	// Format is the lock file's format version (1).
	Format int `json:"format"`
	// Plugins are sorted by name, then version.
	Plugins []LockEntry `json:"plugins"`
}

// LockEntry is one installed plugin version.
type LockEntry struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	// Path is the binary, relative to the plugin directory:
	// <name>/<version>/tthost-backend-<name>_v<version>_p<protocol>_<os>_<arch>.
	Path string `json:"path"`
	// SHA256 is the binary's checksum in lowercase hex.
	SHA256     string    `json:"sha256"`
	SDKVersion string    `json:"sdk_version"`
	Summary    string    `json:"summary,omitempty"`
	CLIs       []LockCLI `json:"clis"`
	// InstalledAt is when it was installed (UTC).
	InstalledAt time.Time `json:"installed_at"`
	// Source is the path or URL it was installed from.
	Source string `json:"source"`
}

// LockCLI is one CLI an installed plugin declared, with its capabilities.
type LockCLI struct {
	Name         string           `json:"name"`
	Capabilities []sdk.Capability `json:"capabilities"`
}

// Checksum is the entry's SHA-256 as bytes (nil when malformed, which
// parseLock does not let through).
func (e LockEntry) Checksum() []byte {
	b, err := hex.DecodeString(e.SHA256)
	if err != nil || len(b) != 32 {
		return nil
	}
	return b
}

// Ref is "name@version".
func (e LockEntry) Ref() string { return e.Name + "@" + e.Version }

// Description rebuilds the Describe answer recorded at install.
func (e LockEntry) Description() sdk.Description {
	d := sdk.Description{Name: e.Name, Version: e.Version, Summary: e.Summary, SDKVersion: e.SDKVersion, ProtocolVersion: e.Protocol}
	for _, c := range e.CLIs {
		d.CLIs = append(d.CLIs, sdk.CLI{Name: c.Name, Capabilities: c.Capabilities})
	}
	return d
}

// ReadLock reads dir's lock file. A missing file is an empty lock.
func ReadLock(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{Format: lockFormat}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the plugin lock file: %w", err)
	}
	return parseLock(path, data)
}

var platformRE = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// parseLock parses and checks a lock file's content. The file is outside
// input (anyone may edit it by hand), so every entry is checked and every
// error names the file.
func parseLock(path string, data []byte) (*Lock, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		// The file exists but was never written: a writer creates it empty
		// to hold its flock.
		return &Lock{Format: lockFormat}, nil
	}
	var l Lock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: not a valid plugin lock file: %s. It is written by `tthost plugin install`: "+
			"restore it from a backup, or remove it and install the plugins again", path, jsonErrorAt(data, err))
	}
	switch {
	case l.Format == 0:
		return nil, fmt.Errorf("%s: not a plugin lock file (no \"format\" field); remove it and install the plugins again", path)
	case l.Format > lockFormat:
		return nil, fmt.Errorf("%s: written in lock format %d by a newer tthost; this one reads format %d: upgrade tthost", path, l.Format, lockFormat)
	case l.Format < 0:
		return nil, fmt.Errorf("%s: invalid lock format %d; remove it and install the plugins again", path, l.Format)
	}
	seen := map[string]bool{}
	for i, e := range l.Plugins {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("%s: plugins[%d] (%q): %v; fix or remove the entry by hand (`tthost plugin` commands refuse the file until then)", path, i, e.Name, err)
		}
		key := e.Ref() + " " + e.OS + "/" + e.Arch
		if seen[key] {
			return nil, fmt.Errorf("%s: plugins[%d]: %s for %s/%s is listed twice; remove one entry", path, i, e.Ref(), e.OS, e.Arch)
		}
		seen[key] = true
		l.Plugins[i].SHA256 = strings.ToLower(e.SHA256)
	}
	sortEntries(l.Plugins)
	return &l, nil
}

// check validates one entry: its path must stay inside the plugin
// directory and name a tthost backend binary, its checksum must be a
// SHA-256.
func (e LockEntry) check() error {
	switch {
	case !ValidName(e.Name):
		return fmt.Errorf("invalid plugin name (want lowercase letters, digits and dashes)")
	case e.Protocol < 1:
		return fmt.Errorf("invalid protocol %d", e.Protocol)
	case !platformRE.MatchString(e.OS) || !platformRE.MatchString(e.Arch):
		return fmt.Errorf("invalid os/arch %q/%q", e.OS, e.Arch)
	case e.Checksum() == nil:
		return fmt.Errorf("sha256 %q is not 64 hex digits", e.SHA256)
	case e.Path == "" || !filepath.IsLocal(e.Path) || filepath.Clean(e.Path) != e.Path || strings.Contains(e.Path, `\`):
		return fmt.Errorf("path %q must be a clean path inside the plugin directory", e.Path)
	case !strings.HasPrefix(filepath.Base(e.Path), BinaryPrefix):
		return fmt.Errorf("path %q does not name a %s* binary", e.Path, BinaryPrefix)
	}
	if v, err := NormalizeVersion(e.Version); err != nil || v != e.Version {
		return fmt.Errorf("version %q is not a semantic version without a leading v", e.Version)
	}
	for _, c := range e.CLIs {
		if c.Name == "" {
			return fmt.Errorf("a CLI without a name")
		}
	}
	return nil
}

func sortEntries(es []LockEntry) {
	slices.SortStableFunc(es, func(a, b LockEntry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return compareVersions(a.Version, b.Version)
	})
}

// jsonErrorAt turns a JSON error's byte offset into "line L, column C".
func jsonErrorAt(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err.Error()
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// lockHandle is a plugin directory's lock file, held with an exclusive
// flock until release.
type lockHandle struct {
	dir string
	f   *os.File
	// fresh: the file was empty when locked (created to hold the flock);
	// if nothing is written, release removes it again, so a failed first
	// install leaves no file behind.
	fresh, written bool
}

// acquireLock takes the exclusive flock on dir's lock file (creating an
// empty one if needed) and reads the lock. Because writers replace the
// file by rename, a lock taken on a file that was replaced meanwhile
// protects nothing: then it takes the lock again on the new file.
func acquireLock(dir string) (*lockHandle, *Lock, error) {
	if err := checkLockFilePerms(dir); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, LockFile)
	for range 100 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open the plugin lock file: %w", err)
		}
		if err := flock(f); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("lock %s: %w", path, err)
		}
		held, err1 := f.Stat()
		current, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, current) {
			data, err := io.ReadAll(f)
			if err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("read %s: %w", path, err)
			}
			l, err := parseLock(path, data)
			if err != nil {
				f.Close()
				return nil, nil, err
			}
			return &lockHandle{dir: dir, f: f, fresh: len(bytes.TrimSpace(data)) == 0}, l, nil
		}
		f.Close() // replaced (or removed) while we waited: lock the new file
	}
	return nil, nil, fmt.Errorf("could not lock %s: it keeps being replaced", path)
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// write replaces the lock file with l: a temp file in the same directory,
// synced, then renamed over the old one, so a reader sees the old content
// or the new, never a part.
func (h *lockHandle) write(l *Lock) error {
	l.Format = lockFormat
	sortEntries(l.Plugins)
	if l.Plugins == nil {
		l.Plugins = []LockEntry{}
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(h.dir, LockFile), append(data, '\n'), 0o644); err != nil {
		return err
	}
	h.written = true
	return nil
}

// release drops the flock. Waiters then find the file replaced (or gone)
// and lock the current one.
func (h *lockHandle) release() {
	if h.fresh && !h.written {
		_ = os.Remove(filepath.Join(h.dir, LockFile))
	}
	_ = h.f.Close()
}

// writeFileAtomic writes data to path through a temp file and a rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable; failure only weakens durability
// across a power cut, so it is not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
