package codextest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// APIKeyEnv is the variable the mock provider reads its API key from
// (model_providers.mock.env_key); Env sets it to a dummy value.
const APIKeyEnv = "MOCK_API_KEY"

// homes maps a CODEX_HOME made by NewCodexHome to its homeInfo, for Env.
var homes sync.Map

type homeInfo struct {
	mock     *MockModel
	userHome string // HOME for codex and the shells it runs
}

// NewCodexHome creates a fresh CODEX_HOME whose config.toml sends every
// model request to mock and switches off everything in codex that would
// otherwise reach the network. The directory is removed when the test
// ends; create it before starting codex, so that codex (stopped by a later
// cleanup, which runs first) is gone by then.
//
// The directory is not under /tmp, where codex refuses to create its
// helper-binary aliases: it is <module root>/.tools/codex-home/h*/codex
// (or under the user cache directory outside a module), beside the empty
// HOME that Env gives codex.
func NewCodexHome(t testing.TB, mock *MockModel) string {
	t.Helper()
	dir := newHomeDir(t)
	home, user := filepath.Join(dir, "codex"), filepath.Join(dir, "home")
	for _, d := range []string{home, user} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("CODEX_HOME: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(ConfigTOML(mock.BaseURL())), 0o600); err != nil {
		t.Fatalf("write config.toml: %v", err)
	}
	homes.Store(home, homeInfo{mock: mock, userHome: user})
	t.Cleanup(func() { homes.Delete(home) })
	return home
}

// ConfigTOML is the config.toml NewCodexHome writes, for a Responses API
// at baseURL (e.g. "http://127.0.0.1:PORT/v1"). Every key is accepted by
// `codex --strict-config`.
func ConfigTOML(baseURL string) string {
	return fmt.Sprintf(`# Written by codextest: codex talks only to the test's mock model.
model_provider = "mock"
model = %q
check_for_update_on_startup = false

[model_providers.mock]
name = "mock"
base_url = %q
wire_api = "responses"
env_key = %q
request_max_retries = 0
stream_max_retries = 0
supports_websockets = false

[analytics]
enabled = false

[features]
plugins = false                       # else: git ls-remote github.com, api.github.com, chatgpt.com at startup
apps = false
remote_plugin = false
unbounded_connection_retries = false  # else: an unreachable provider is retried forever
`, MockModelName, baseURL, APIKeyEnv)
}

// Env returns the environment codex needs, on top of os.Environ(), to run
// with home: CODEX_HOME and the mock provider's dummy API key. When home
// came from NewCodexHome it adds:
//
//   - the proxy guard: HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point at the
//     mock, NO_PROXY exempts loopback, so a request codex would send
//     anywhere else is refused by the mock and fails the test instead of
//     leaving the machine;
//   - HOME, an empty directory beside CODEX_HOME: the login shells codex
//     runs commands in (`bash -lc`) then do not run the developer's
//     dotfiles (a pyenv rehash, say, that a test's cleanup could kill while
//     it holds a lock in the real home).
func Env(home string) []string {
	env := []string{
		"CODEX_HOME=" + home,
		APIKeyEnv + "=dummy-key",
		"NO_COLOR=1", // plain logs on stderr
	}
	if v, ok := homes.Load(home); ok {
		info := v.(homeInfo)
		env = append(env, "HOME="+info.userHome)
		env = append(env, mockrec.ProxyEnv(info.mock.URL())...)
	}
	return env
}

// newHomeDir makes a short, fresh directory outside /tmp and removes it
// when the test ends.
func newHomeDir(t testing.TB) string {
	t.Helper()
	// The module's .tools/ when the checkout is not itself under /tmp (a
	// CI clone may be), else the user's cache directory.
	base := ""
	if root, err := moduleRoot(); err == nil && !underTempDir(root) {
		base = filepath.Join(root, ".tools", "codex-home")
	} else if cache, err := os.UserCacheDir(); err == nil && !underTempDir(cache) {
		base = filepath.Join(cache, "tthost-codextest")
	} else {
		t.Fatalf("no place for a CODEX_HOME outside %s (codex refuses its helper aliases there): "+
			"the checkout and the user cache directory ($XDG_CACHE_HOME or ~/.cache) are both under it", os.TempDir())
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatalf("CODEX_HOME parent: %v", err)
	}
	home, err := os.MkdirTemp(base, "h")
	if err != nil {
		t.Fatalf("CODEX_HOME: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(home); err != nil {
			t.Errorf("remove CODEX_HOME: %v", err)
		}
	})
	return home
}

// underTempDir reports whether dir is the temp dir or inside it.
func underTempDir(dir string) bool {
	tmp := filepath.Clean(os.TempDir())
	dir = filepath.Clean(dir)
	return dir == tmp || strings.HasPrefix(dir, tmp+string(filepath.Separator))
}
