package acptest

import (
	"github.com/tthost/tthost/plugins/claude/claudetest"
)

// ClaudeCodeACPEnv is the environment claude-code-acp needs to run offline
// against mock (claudetest's MockAnthropic) with home as HOME: claudetest's
// Env (the mock's URL, no telemetry, the proxy guard), with two changes
// that keep the Claude Code 2.1.44 bundled in claude-code-acp 0.16.2 from
// calling api.anthropic.com, which it does whatever ANTHROPIC_BASE_URL
// says (docs/compatibility.md, "ACP agents"):
//
//   - CLAUDE_CODE_DISABLE_FAST_MODE=1: no fast-mode status prefetch
//     (GET /api/claude_code_penguin_mode) at start;
//   - the dummy key as ANTHROPIC_AUTH_TOKEN (a gateway's bearer token, as
//     the mock is to Claude Code) instead of ANTHROPIC_API_KEY, which is
//     set empty: with an API key, the metrics exporter asks the
//     organization's metrics opt-out (GET
//     /api/claude_code/organizations/metrics_enabled) when Claude Code
//     exits, and no variable turns that off (DISABLE_TELEMETRY and
//     CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC do not).
//
// Anything else it would send elsewhere still lands on the mock's proxy
// guard and fails the test.
func ClaudeCodeACPEnv(home string, mock *claudetest.MockAnthropic) map[string]string {
	env := claudetest.EnvMap(home, mock)
	env["ANTHROPIC_API_KEY"] = ""
	env["ANTHROPIC_AUTH_TOKEN"] = claudetest.APIKey
	env["CLAUDE_CODE_DISABLE_FAST_MODE"] = "1"
	return env
}
