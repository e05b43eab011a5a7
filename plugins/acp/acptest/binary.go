package acptest

import (
	"path/filepath"
	"testing"

	"github.com/tthost/tthost/plugins/internal/modroot"
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
	p, err := modroot.Tool("", filepath.Join(".tools", dir, "node_modules", ".bin", bin))
	if err != nil {
		t.Fatalf("%s %s is not installed (%v): run `%s` in the module root (needs Node.js >= 20 and npm)", bin, version, err, target)
	}
	return p
}
