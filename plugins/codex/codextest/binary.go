package codextest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/internal/modroot"
)

// Version is the @openai/codex release the project pins and `make test`
// installs.
const Version = "0.169.0"

// BinEnv names the environment variable that overrides where the native
// codex binary is.
const BinEnv = "TTHOST_CODEX_BIN"

// InstallHint says how to get the codex binary the tests need.
const InstallHint = "install it with `make test` (which installs codex when missing), or run " +
	"`npm install --no-audit --no-fund --prefix .tools/codex @openai/codex@" + Version + "` in the module root " +
	"(needs Node.js and npm: `apt-get install nodejs npm`), or set " + BinEnv + " to a codex " + Version + " binary"

// CodexBinary returns the path of the native codex binary: $TTHOST_CODEX_BIN
// if set, else the one npm installed under <module root>/.tools/codex. It
// fails the test with InstallHint when there is none.
//
// It returns the native binary, not the npm wrapper bin/codex.js: on Node
// versions without process.execve the wrapper spawns the binary as a child
// and a kill of the wrapper would leave it orphaned.
func CodexBinary(t testing.TB) string {
	t.Helper()
	p, err := findCodexBinary()
	if err != nil {
		t.Fatalf("codex is not installed: %v; %s", err, InstallHint)
	}
	return p
}

func findCodexBinary() (string, error) {
	if os.Getenv(BinEnv) != "" {
		return modroot.Tool(BinEnv)
	}
	rel, err := nativeBinaryPath()
	if err != nil {
		return "", err
	}
	modules := filepath.Join(".tools", "codex", "node_modules")
	// npm hoists the platform package next to @openai/codex; an older
	// layout nests it inside.
	return modroot.Tool(BinEnv, filepath.Join(modules, rel), filepath.Join(modules, "@openai", "codex", "node_modules", rel))
}

// nativeBinaryPath is where @openai/codex's platform package keeps the
// native binary, relative to node_modules.
func nativeBinaryPath() (string, error) {
	triples := map[string][2]string{
		"linux/amd64":  {"codex-linux-x64", "x86_64-unknown-linux-musl"},
		"linux/arm64":  {"codex-linux-arm64", "aarch64-unknown-linux-musl"},
		"darwin/amd64": {"codex-darwin-x64", "x86_64-apple-darwin"},
		"darwin/arm64": {"codex-darwin-arm64", "aarch64-apple-darwin"},
	}
	p, ok := triples[runtime.GOOS+"/"+runtime.GOARCH]
	if !ok {
		return "", fmt.Errorf("@openai/codex has no native binary for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return filepath.Join("@openai", p[0], "vendor", p[1], "bin", "codex"), nil
}

// ModuleRoot returns the directory holding go.mod, found by walking up
// from the working directory (a test's working directory is its package).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

func moduleRoot() (string, error) { return modroot.Find() }

var versions sync.Map // binary path -> version string

// CodexVersion returns the version of the codex binary CodexBinary finds,
// e.g. "0.169.0", from `codex --version`.
func CodexVersion(t testing.TB) string {
	t.Helper()
	bin := CodexBinary(t)
	if v, ok := versions.Load(bin); ok {
		return v.(string)
	}
	// Even --version creates files in CODEX_HOME: give it a throwaway one
	// rather than the developer's ~/.codex.
	home := newHomeDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = append(os.Environ(), "CODEX_HOME="+home)
	cmd.Dir = home
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --version: %v; %s", bin, err, InstallHint)
	}
	// "codex-cli 0.169.0"
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatalf("%s --version printed nothing", bin)
	}
	v := fields[len(fields)-1]
	versions.Store(bin, v)
	return v
}
