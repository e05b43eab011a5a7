package pluginstore

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// BinaryPrefix starts the file name of every backend plugin binary:
// tthost-backend-<name>.
const BinaryPrefix = "tthost-backend-"

// ChecksumFile is the manifest beside plugin binaries that records each
// binary's SHA-256, in sha256sum format ("<hex>  <file name>"), so
// `sha256sum -c tthost-plugins.sha256` checks it by hand too. `make build`
// writes it for the built-in plugins.
const ChecksumFile = "tthost-plugins.sha256"

// OneShot is the name of the built-in fallback backend.
const OneShot = "oneshot"

// Candidate is a plugin binary found on disk.
type Candidate struct {
	// Name is the backend name: from the file name of a loose binary, from
	// the lock file (which recorded its Describe) for an installed one.
	Name string
	// Path is the binary's absolute path.
	Path string
	// Checksum is the SHA-256 recorded in the directory's manifest or lock
	// file; nil when neither has an entry (such a plugin is refused at
	// launch).
	Checksum []byte
	// Dir is the directory it was found in.
	Dir string
	// Installed is the lock-file entry of a plugin installed with `tthost
	// plugin install`; nil for a loose binary listed in the directory's
	// checksum manifest (the built-in plugins).
	Installed *LockEntry
}

// ErrNoChecksum is returned for a plugin binary that has no recorded
// checksum: tthost runs only plugins whose SHA-256 it can verify.
var ErrNoChecksum = errors.New("no checksum recorded")

// Listed is a plugin binary a plugin directory knows of, whether or not
// discovery uses it: every installed version, and every loose binary or
// manifest entry.
type Listed struct {
	Candidate
	// Active is true for the one binary Discover returns under the name.
	Active bool
	// Note says why an entry is not active ("" when it is).
	Note string
}

// Discover lists the plugins that serve under each name, searching dirs in
// order:
//
//   - A name found in an earlier directory wins over the same name in a
//     later one, so the built-in directory (first) cannot be shadowed by a
//     plugin directory.
//   - Within a directory, a plugin installed with `tthost plugin install`
//     (recorded in plugins.lock.json) wins over a loose binary of the same
//     name listed in tthost-plugins.sha256.
//   - Of several installed versions of one plugin, the highest semantic
//     version built for this OS and architecture is used. (Pinning another
//     is `tthost plugin remove NAME@VERSION` of the newer ones.)
//
// A lock file that cannot be read or parsed is an error: `tthost plugin`
// commands report it. A worker uses DiscoverUsable instead.
func Discover(dirs ...string) ([]Candidate, error) {
	all, _, err := list(dirs, false)
	if err != nil {
		return nil, err
	}
	return active(all), nil
}

// DiscoverUsable is Discover for a worker, which must keep serving its agent
// on the built-in backends when an installed plugin cannot be trusted: a
// plugin directory whose lock file cannot be read or parsed contributes
// none of its installed plugins (its loose binaries, checked against their
// own manifest, still count), and each such directory is described in
// warnings, with the file and the fix. Other errors fail as in Discover.
func DiscoverUsable(dirs ...string) (cands []Candidate, warnings []string, err error) {
	all, warnings, err := list(dirs, true)
	if err != nil {
		return nil, nil, err
	}
	return active(all), warnings, nil
}

func active(all []Listed) []Candidate {
	var out []Candidate
	for _, l := range all {
		if l.Active {
			out = append(out, l.Candidate)
		}
	}
	return out
}

// List is what Discover sees, with the entries it does not use and why:
// older installed versions, shadowed names, manifest entries whose file is
// missing. It is sorted by name, active entry first.
func List(dirs ...string) ([]Listed, error) {
	all, _, err := list(dirs, false)
	return all, err
}

// list scans dirs in order. With tolerateLock, a lock file that cannot be
// used becomes a warning and its directory's installed plugins are left
// out; so does a later directory (not the built-ins') that cannot be read
// at all, e.g. for a corrupt checksum manifest.
func list(dirs []string, tolerateLock bool) ([]Listed, []string, error) {
	winner := map[string]string{} // name -> where the active binary is
	var out []Listed
	var warnings []string
	for i, dir := range dirs {
		if dir == "" {
			continue
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, nil, err
		}
		found, lockErr, err := scanDir(abs)
		if err != nil {
			// The first directory holds the built-in backends: without it
			// nothing can serve. A later one (the plugin directory) that
			// cannot be read is left out, like a bad lock file.
			if !tolerateLock || i == 0 {
				return nil, nil, err
			}
			warnings = append(warnings, unusableLockWarning(abs, err))
			continue
		}
		if lockErr != nil {
			if !tolerateLock {
				return nil, nil, lockErr
			}
			warnings = append(warnings, unusableLockWarning(abs, lockErr))
		}
		for _, l := range found {
			if l.Active {
				if where, ok := winner[l.Name]; ok {
					l.Active = false
					l.Note = "not used: " + where + " has the same name"
				} else {
					winner[l.Name] = l.Path
				}
			}
			out = append(out, l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Active && !out[j].Active
	})
	return out, warnings, nil
}

// unusableLockWarning says that a directory's installed plugins are left
// out because of its lock file, and what to do about it.
func unusableLockWarning(dir string, lockErr error) string {
	return fmt.Sprintf("the plugins installed in %s are not used, the built-in backends still serve: %v "+
		"(`tthost plugin verify` reports it; a lock file that cannot be repaired can be removed, then install the plugins again with `tthost plugin install`)",
		dir, lockErr)
}

// scanDir lists one directory's plugins: installed ones from its lock file
// (the highest version for this platform active), then loose binaries
// (listed, and active unless missing or an installed plugin has the name).
// A lock file that cannot be read or parsed is lockErr, and the listing
// holds the loose binaries only.
func scanDir(dir string) (_ []Listed, lockErr, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read plugin directory %s: %w", dir, err)
	}
	lock, lockErr := ReadLock(dir)
	if lockErr != nil {
		lock = &Lock{Format: lockFormat}
	}
	sums, err := readChecksums(filepath.Join(dir, ChecksumFile))
	if err != nil {
		return nil, nil, err
	}
	var out []Listed
	best := map[string]int{} // name -> index in out of its best version here
	for _, e := range lock.Plugins {
		l := Listed{Candidate: Candidate{Name: e.Name, Path: filepath.Join(dir, e.Path), Checksum: e.Checksum(), Dir: dir, Installed: &e}}
		if e.OS != runtime.GOOS || e.Arch != runtime.GOARCH {
			l.Note = fmt.Sprintf("not used: built for %s/%s, this is %s/%s", e.OS, e.Arch, runtime.GOOS, runtime.GOARCH)
			out = append(out, l)
			continue
		}
		if i, ok := best[e.Name]; !ok || compareVersions(e.Version, out[i].Installed.Version) > 0 {
			if ok {
				out[i].Active = false
			}
			best[e.Name] = len(out)
			l.Active = true
		}
		out = append(out, l)
	}
	for i := range out {
		if !out[i].Active && out[i].Note == "" {
			out[i].Note = "not used: version " + out[best[out[i].Name]].Installed.Version + " is installed too and is newer"
		}
	}
	loose := map[string]bool{}
	for _, e := range entries {
		name, ok := looseName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		loose[e.Name()] = true
		l := Listed{Candidate: Candidate{Name: name, Path: filepath.Join(dir, e.Name()), Checksum: sums[e.Name()], Dir: dir}, Active: true}
		if _, ok := best[name]; ok {
			l.Active = false
			l.Note = "not used: a plugin of the same name is installed in " + dir
		}
		out = append(out, l)
	}
	for file, sum := range sums {
		name, ok := looseName(file)
		if !ok || loose[file] {
			continue
		}
		out = append(out, Listed{Candidate: Candidate{Name: name, Path: filepath.Join(dir, file), Checksum: sum, Dir: dir},
			Note: "missing: listed in " + ChecksumFile + " but there is no such file"})
	}
	return out, lockErr, nil
}

// looseName is the backend name of a loose binary's file name
// (tthost-backend-<name>, no dot, so "<binary>.sha256" and the like are
// not binaries).
func looseName(file string) (string, bool) {
	name, ok := strings.CutPrefix(file, BinaryPrefix)
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

// ReadManifest reads dir's checksum manifest (tthost-plugins.sha256): file
// name to SHA-256. A missing manifest is an empty one.
func ReadManifest(dir string) (map[string][]byte, error) {
	return readChecksums(filepath.Join(dir, ChecksumFile))
}

// readChecksums parses a sha256sum-format manifest. A missing manifest is
// an empty one; a malformed line is an error naming the file and line.
func readChecksums(path string) (map[string][]byte, error) {
	sums := map[string][]byte{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return sums, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, file, ok := strings.Cut(line, " ")
		file = strings.TrimPrefix(strings.TrimSpace(file), "*")
		b, err := hex.DecodeString(sum)
		base := filepath.Base(file)
		if !ok || err != nil || len(b) != 32 || file == "" || base == "/" || base == "." || base == ".." {
			return nil, fmt.Errorf("%s:%d: malformed checksum line %q (want \"<sha256 hex>  <file>\")", path, n, line)
		}
		sums[base] = b
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return sums, nil
}
