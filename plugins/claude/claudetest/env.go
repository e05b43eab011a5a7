package claudetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// APIKey is the dummy key Env gives claude: the mock accepts any.
const APIKey = "sk-ant-dummy"

// NewHome returns a fresh, empty HOME for claude, removed when the test
// ends. Claude keeps its settings and its session transcripts under
// $HOME/.claude (projects/<cwd slug>/<session id>.jsonl), so a test that
// resumes a session in a new process gives both processes the same home.
func NewHome(t testing.TB) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatalf("claude home: %v", err)
	}
	return home
}

// Env returns the environment claude needs, on top of the inherited one,
// to run offline against mock with home as HOME:
//
//   - HOME: claude's settings and transcripts stay in the test's home,
//     and the shells it runs skip the developer's dotfiles;
//   - ANTHROPIC_BASE_URL (the mock) and ANTHROPIC_API_KEY (a dummy);
//   - DISABLE_TELEMETRY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC and
//     DISABLE_AUTOUPDATER: no telemetry, update checks or other traffic
//     beside the model's (the backend sets them too);
//   - the proxy guard: HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point at the
//     mock and NO_PROXY exempts loopback, so a request claude would still
//     send anywhere else is refused by the mock and fails the test instead
//     of leaving the machine.
func Env(home string, mock *MockAnthropic) []string {
	env := []string{
		"HOME=" + home,
		"ANTHROPIC_BASE_URL=" + mock.URL(),
		"ANTHROPIC_API_KEY=" + APIKey,
		"DISABLE_TELEMETRY=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		"NO_COLOR=1",
	}
	return append(env, mockrec.ProxyEnv(mock.URL())...)
}

// EnvMap is Env as a map, for sdk.SessionConfig.Env.
func EnvMap(home string, mock *MockAnthropic) map[string]string {
	out := map[string]string{}
	for _, kv := range Env(home, mock) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}
