package backend

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// Name is the backend name taken from the file name.
	Name string
	// Path is the binary's absolute path.
	Path string
	// Checksum is the SHA-256 recorded in the directory's manifest; nil when
	// the manifest has no entry (such a plugin is refused at launch).
	Checksum []byte
	// Dir is the directory it was found in.
	Dir string
}

// ErrNoChecksum is returned for a plugin binary that has no recorded
// checksum: tthost runs only plugins whose SHA-256 it can verify.
var ErrNoChecksum = errors.New("no checksum recorded")

// Discover lists the plugin binaries in dirs. A name found in an earlier
// directory wins over the same name in a later one, so the built-in
// directory (first) cannot be shadowed by a plugin directory.
func Discover(dirs ...string) ([]Candidate, error) {
	seen := map[string]bool{}
	var out []Candidate
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read plugin directory %s: %w", dir, err)
		}
		sums, err := readChecksums(filepath.Join(dir, ChecksumFile))
		if err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || name == "" || e.IsDir() || strings.Contains(name, ".") || seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, Candidate{Name: name, Path: filepath.Join(abs, e.Name()), Checksum: sums[e.Name()], Dir: abs})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
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
