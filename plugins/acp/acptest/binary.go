package acptest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The releases the project pins and the Makefile installs.
const (
	GeminiVersion        = "0.61.0"
	ClaudeCodeACPVersion = "0.16.2"
)

// GeminiBinary returns the gemini launcher npm installed under
// <module root>/.tools/gemini, or fails the test saying how to install it.
func GeminiBinary(t testing.TB) string {
	t.Helper()
	return tool(t, "gemini", "gemini", GeminiVersion, "make ensure-gemini")
}

// ClaudeCodeACPBinary returns the claude-code-acp launcher npm installed
// under <module root>/.tools/claude-code-acp, or fails the test.
func ClaudeCodeACPBinary(t testing.TB) string {
	t.Helper()
	return tool(t, "claude-code-acp", "claude-code-acp", ClaudeCodeACPVersion, "make ensure-claude-code-acp")
}

func tool(t testing.TB, dir, bin, version, target string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	p := filepath.Join(root, ".tools", dir, "node_modules", ".bin", bin)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("%s %s is not installed at %s (%v): run `%s` in the module root (needs Node.js >= 20 and npm)", bin, version, p, err, target)
	}
	return p
}

func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent", wd)
		}
	}
}
