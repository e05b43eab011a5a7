package pluginstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk/sdktest"
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

func TestDiscoverReadsTheManifestAndLetsEarlierDirectoriesWin(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	for _, d := range []string{first, second} {
		if err := os.WriteFile(filepath.Join(d, "tthost-backend-x"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(second, "tthost-backend-y"), []byte("y"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(second, "tthost-backend-y.sha256"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	sdktest.WriteChecksums(t, first, ChecksumFile, "tthost-backend-x")
	cands, err := Discover(first, second, filepath.Join(first, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 2 || cands[0].Name != "x" || cands[0].Dir != first || cands[1].Name != "y" {
		t.Fatalf("candidates: %+v", cands)
	}
	if cands[0].Checksum == nil || cands[1].Checksum != nil {
		t.Errorf("checksums: x %x, y %x; want x recorded, y missing", cands[0].Checksum, cands[1].Checksum)
	}
}

func TestDiscoverRejectsAMalformedManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ChecksumFile), []byte("# comment\nnot-hex  tthost-backend-x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Discover(dir)
	if err == nil || !strings.Contains(err.Error(), ChecksumFile+":2:") {
		t.Fatalf("err = %v; want one naming the manifest and line 2", err)
	}
}
