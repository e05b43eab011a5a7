package sdktest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var builds struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

// Build compiles the Go main package pkg (an import path or a ./relative
// path resolved by the go command from the current directory) once per test
// process and returns the binary's path. name is the file name to give it.
// Call CleanupBuilds from TestMain to remove the binaries.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := pkg + "\x00" + name
	if p, ok := builds.paths[key]; ok {
		return p
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "tthost-test-bin-")
		if err != nil {
			t.Fatalf("temp dir for test binaries: %v", err)
		}
		builds.dir = d
		builds.paths = map[string]string{}
	}
	out := filepath.Join(builds.dir, name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	// The same flags as `make build`, so tests and benchmarks run what
	// users run (stripped binaries are smaller: faster to hash and start).
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = os.Environ()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	builds.paths[key] = out
	return out
}

// BuildDir returns the directory Build writes binaries to ("" before the
// first Build).
func BuildDir() string {
	builds.Lock()
	defer builds.Unlock()
	return builds.dir
}

// CleanupBuilds removes every binary built by Build. Call it from TestMain
// after m.Run.
func CleanupBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir = ""
		builds.paths = nil
	}
}

// SHA256File returns the SHA-256 of a file.
func SHA256File(t testing.TB, path string) []byte {
	t.Helper()
	sum, err := sha256File(path)
	if err != nil {
		t.Fatalf("sha256 %s: %v", path, err)
	}
	return sum
}

func sha256File(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// CopyFile copies src to dst with the given mode, for tests that tamper
// with a copy of a plugin binary.
func CopyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("read %s: %v", src, err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatalf("write %s: %v", dst, err)
	}
}

// WriteChecksums writes a sha256sum-format manifest ("<hex>  <name>") of the
// named files in dir to dir/manifest.
func WriteChecksums(t testing.TB, dir, manifest string, names ...string) {
	t.Helper()
	var b strings.Builder
	for _, n := range names {
		sum := SHA256File(t, filepath.Join(dir, n))
		fmt.Fprintf(&b, "%x  %s\n", sum, n)
	}
	if err := os.WriteFile(filepath.Join(dir, manifest), []byte(b.String()), 0o644); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
}

// RunMain is a TestMain body for packages that Build binaries: it runs the
// tests, removes the binaries and exits with the tests' code.
//
//	func TestMain(m *testing.M) { sdktest.RunMain(m) }
func RunMain(m *testing.M) {
	code := m.Run()
	CleanupBuilds()
	os.Exit(code)
}
