package modroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newModule makes a module of its own in a temporary directory, with the
// given files (relative path -> mode), and makes it the working directory.
func newModule(t *testing.T, files map[string]os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for rel, mode := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(dir, "pkg", "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	return dir
}

func TestFindWalksUpToGoMod(t *testing.T) {
	dir := newModule(t, nil)
	got, err := Find()
	if err != nil || got != dir {
		t.Fatalf("Find() = %q, %v; want %q", got, err, dir)
	}
}

func TestToolTakesTheFirstExecutablePath(t *testing.T) {
	dir := newModule(t, map[string]os.FileMode{
		".tools/x/plain": 0o644, // not executable
		".tools/x/bin":   0o755,
	})
	t.Setenv("MODROOT_TEST_BIN", "")
	got, err := Tool("MODROOT_TEST_BIN", ".tools/x/missing", ".tools/x/plain", ".tools/x/bin")
	if want := filepath.Join(dir, ".tools/x/bin"); err != nil || got != want {
		t.Fatalf("Tool = %q, %v; want %q", got, err, want)
	}
}

func TestToolPrefersTheVariable(t *testing.T) {
	newModule(t, map[string]os.FileMode{".tools/x/bin": 0o755})
	other := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MODROOT_TEST_BIN", other)
	if got, err := Tool("MODROOT_TEST_BIN", ".tools/x/bin"); err != nil || got != other {
		t.Fatalf("Tool = %q, %v; want %q", got, err, other)
	}
}

func TestToolErrorsNameWhatWasLookedAt(t *testing.T) {
	newModule(t, map[string]os.FileMode{".tools/x/dir/f": 0o755})
	tests := []struct {
		name, env string
		paths     []string
		want      string
	}{
		{name: "nothing installed", paths: []string{".tools/x/missing", ".tools/x/other"}, want: ".tools/x/missing"},
		{name: "a directory", paths: []string{".tools/x/dir"}, want: "not an executable file"},
		{name: "the variable names no file", env: "/nonexistent/x", paths: []string{".tools/x/dir/f"}, want: "MODROOT_TEST_BIN=/nonexistent/x"},
		{name: "no path", want: "no path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MODROOT_TEST_BIN", tt.env)
			_, err := Tool("MODROOT_TEST_BIN", tt.paths...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Tool error = %v; want one saying %q", err, tt.want)
			}
		})
	}
}
