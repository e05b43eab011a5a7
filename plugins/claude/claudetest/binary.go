package claudetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tthost/tthost/plugins/internal/modroot"
)

// Version is the @anthropic-ai/claude-code release the project pins and
// `make ensure-claude` installs.
const Version = "2.1.330"

// BinEnv names the environment variable that overrides where the claude
// binary is.
const BinEnv = "TTHOST_CLAUDE_BIN"

// InstallHint says how to get the claude binary the tests need.
const InstallHint = "run `make ensure-claude` in the module root (it installs @anthropic-ai/claude-code@" + Version +
	" into .tools/claude with npm), or set " + BinEnv + " to a claude " + Version + " binary"

// Binary returns the path of the claude binary: $TTHOST_CLAUDE_BIN if set,
// else <module root>/.tools/claude/node_modules/.bin/claude (a link to the
// native binary npm installs). It fails the test with InstallHint when
// there is none; it never skips.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := findBinary()
	if err != nil {
		t.Fatalf("claude is not installed: %v; %s", err, InstallHint)
	}
	return p
}

func findBinary() (string, error) {
	p, err := modroot.Tool(BinEnv, filepath.Join(".tools", "claude", "node_modules", ".bin", "claude"))
	if err != nil || os.Getenv(BinEnv) != "" {
		return p, err
	}
	// The native binary itself, not the link: its path names the package
	// in process listings, and nothing depends on the link's directory.
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	return p, nil
}
