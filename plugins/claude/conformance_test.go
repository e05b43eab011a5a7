package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The conformance suite against the built Claude backend driving the real
// Claude Code 2.1.330, offline against claudetest's MockAnthropic: the
// mock echoes a prompt's first line ("echo: ..."), streams a long reply
// for SLOW_STREAM (its ticks show that it runs), answers STEER_TOOL with a
// Bash call that sleeps 3 s and then "steered: <text>" for text claude
// folded into the turn at that tool boundary, lists the conversation's
// earlier user texts for REMEMBER, and fails requests whose prompt holds
// the fail word with HTTP 500.
func TestClaudeBackendWithRealClaude(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, claudePkg, "tthost-backend-claude")
	const failWord = "CONFORMANCE_MODEL_ERROR"
	mock := claudetest.NewMockAnthropic(t, func(req claudetest.Request) claudetest.Reply {
		if strings.Contains(req.LastUserText(), failWord) {
			return claudetest.Reply{Status: 400, ErrorType: "invalid_request_error"}
		}
		return claudetest.DefaultScript(req)
	})
	home := claudetest.NewHome(t)
	conformance.Run(t, conformance.Target{
		Path:      bin,
		CLI:       cliClaude,
		Command:   claudetest.Binary(t) + " --print --dangerously-skip-permissions",
		Env:       claudetest.EnvMap(home, mock),
		PluginEnv: []string{procs.Env(), "GORACE=atexit_sleep_ms=0"},
		// One workdir for every check: claude keeps its transcripts by
		// working directory, and the resume check resumes in a new plugin.
		Workdir: t.TempDir(),
		Prompts: conformance.Prompts{Long: claudetest.MarkSlowStream, Fail: failWord, Echo: conformance.EchoFirstLine,
			Steer: claudetest.MarkSteerTool, SteerEcho: conformance.EchoFirstLine, Recall: claudetest.MarkRemember},
	}, conformance.Options{Timeout: 90 * time.Second})
}
