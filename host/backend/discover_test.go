package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadChecksums: a plugin directory's manifest is outside input. Any
// content gives checksums or an error naming the manifest, never a panic,
// and every accepted checksum is a full SHA-256.
func FuzzReadChecksums(f *testing.F) {
	f.Add("7c6df4e242f72483ff4604c575791000b60d40dca6170f2e81bfaa1042579219  tthost-backend-oneshot\n")
	f.Add("# comment\n\n7c6df4e242f72483ff4604c575791000b60d40dca6170f2e81bfaa1042579219 *bin/tthost-backend-x\n")
	f.Add("zz  tthost-backend-x\n")
	f.Add("7c6df4e2  short\n")
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), ChecksumFile)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sums, err := readChecksums(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the manifest: %v", err)
			}
			return
		}
		for name, sum := range sums {
			if len(sum) != 32 || name == "" || strings.Contains(name, "/") {
				t.Fatalf("accepted %q -> %x", name, sum)
			}
		}
	})
}

func TestReadChecksumsRejectsNamesThatAreNotFiles(t *testing.T) {
	for _, name := range []string{"/", ".", "..", "dir/"} {
		path := filepath.Join(t.TempDir(), ChecksumFile)
		line := strings.Repeat("ab", 32) + "  " + name + "\n"
		if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		if sums, err := readChecksums(path); err == nil && len(sums) > 0 {
			for n := range sums {
				if n == "/" || n == "." || n == ".." {
					t.Errorf("%q accepted as %q", name, n)
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), ChecksumFile)
	if err := os.WriteFile(path, []byte(strings.Repeat("x", 70000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readChecksums(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("an overlong line: %v; want an error naming the manifest", err)
	}
}
