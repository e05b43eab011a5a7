package acptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// GeminiSettings is the settings.json NewGeminiHome writes: no telemetry,
// no usage statistics, no update checks.
const GeminiSettings = `{
  "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false}
}
`

// NewGeminiHome creates an empty HOME for gemini with ~/.gemini/settings.json
// (GeminiSettings). Gemini keeps its chats under it
// (~/.gemini/tmp/<project>/chats), so a resume needs the same home.
func NewGeminiHome(t testing.TB) string {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, ".gemini")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte(GeminiSettings), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// GeminiEnv is the environment gemini needs to run offline against mock
// with home: HOME, a dummy GEMINI_API_KEY, GOOGLE_GEMINI_BASE_URL (gemini
// then authenticates as a gateway by itself), GEMINI_CLI_NO_RELAUNCH, and
// the proxy guard: HTTP(S)_PROXY point at the mock, so a request gemini
// would send anywhere else is refused by the mock and fails the test.
func GeminiEnv(home string, mock *MockGemini) map[string]string {
	env := map[string]string{
		"HOME":                   home,
		"GEMINI_API_KEY":         "dummy-key",
		"GOOGLE_GEMINI_BASE_URL": mock.URL(),
		"GEMINI_CLI_NO_RELAUNCH": "true",
		"NO_COLOR":               "1",
	}
	for _, kv := range mockrec.ProxyEnv(mock.URL()) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}
