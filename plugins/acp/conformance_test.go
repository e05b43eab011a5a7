package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/acp/acptest"
	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The conformance suite against the ACP backend, as CI runs it: driving
// the fake agent, and driving the real Gemini CLI and claude-code-acp
// offline.

const acpPkg = "github.com/tthost/tthost/plugins/acp"

// conformanceOpts give turns room under -race on a small machine, and a
// resume of gemini room for the minute guard (up to a minute).
var conformanceOpts = conformance.Options{Timeout: 90 * time.Second}

func conformanceEnv(procs *sdktest.Processes) []string {
	return []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}
}

// TestACPBackendWithFakeAgent: the backend driving the fake agent, which
// sleeps on SLEEP_MS= (saying "working"), answers "echo: <first line>",
// fails on FAIL, and recalls its session on REMEMBER (kept in
// FAKE_ACP_STATE across processes, so a resume can prove it). The steer
// prompt sleeps 3 s and ends by itself: a queued steer is prompted after.
func TestACPBackendWithFakeAgent(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, acpPkg, "tthost-backend-acp")
	conformance.Run(t, conformance.Target{
		Path:      bin,
		CLI:       "fake-acp",
		Command:   fakeBinary(t),
		Env:       map[string]string{"FAKE_ACP_STATE": t.TempDir()},
		PluginEnv: conformanceEnv(procs),
		Prompts: conformance.Prompts{Long: "SLEEP_MS=60000", Fail: "FAIL", Echo: conformance.EchoFirstLine,
			Steer: "SLEEP_FIRST_MS=3000", SteerEcho: conformance.EchoFirstLine, Recall: "REMEMBER"},
	}, conformanceOpts)
}

// conformanceGeminiScript is the mock's script for the suite: the fail
// word gets an HTTP 400 (gemini does not retry it), STEER_STREAM a stream
// that ends by itself after 3 s (a queued steer follows it), a steered
// text its echo.
func conformanceGeminiScript(failWord string) acptest.Script {
	return func(q acptest.Request) acptest.Reply {
		last := q.LastUserText()
		switch {
		case strings.Contains(last, failWord):
			return acptest.Reply{Status: 400}
		case strings.Contains(last, "STEER_STREAM"):
			return acptest.SlowReply(60, 50*time.Millisecond)
		}
		return acptest.DefaultScript(q)
	}
}

// TestACPBackendWithRealGemini: the backend driving the real Gemini CLI
// offline against MockGemini, with Tinytown's preset command `gemini`.
func TestACPBackendWithRealGemini(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, acpPkg, "tthost-backend-acp")
	gemini := acptest.GeminiBinary(t)
	const failWord = "CONFORMANCE_MODEL_ERROR"
	mock := acptest.NewMockGemini(t, conformanceGeminiScript(failWord))
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("gemini sent requests the mock does not serve: %v", other)
		}
	})
	report := conformance.Check(context.Background(), conformance.Target{
		Path:      bin,
		CLI:       "gemini",
		Command:   gemini,
		Env:       acptest.GeminiEnv(acptest.NewGeminiHome(t), mock),
		PluginEnv: conformanceEnv(procs),
		Prompts: conformance.Prompts{Long: acptest.MarkSlowStream, Fail: failWord, Echo: conformance.EchoFirstLine,
			Steer: "STEER_STREAM", SteerEcho: conformance.EchoFirstLine, Recall: acptest.MarkRemember},
	}, conformanceOpts)
	for _, res := range report.Results {
		if res.Status == conformance.StatusFail {
			t.Errorf("%s failed: %s\nthe plugin's log:\n%s", res.Name, res.Message, res.Log)
		} else {
			t.Logf("%s: %s %s", res.Name, res.Status, res.Message)
		}
	}
}

// conformanceClaudeScript is MockAnthropic's script for the suite: the
// fail word gets an HTTP 400 (Claude Code does not retry it, and its
// error result fails the prompt), STEER_STREAM a stream that ends by
// itself after 3 s (a queued steer follows it), SLOW_STREAM and REMEMBER
// DefaultScript's answers, and a text with a line that starts with
// "conformance" (the suite's prompts do) "echo: <that line>".
//
// Claude Code 2.1.44 does not send a prompt past its context window:
// large_and_unicode's 1 MiB prompt (some 262,000 tokens by the mock's
// count) goes whole into a request to summarize the conversation, and the
// next request carries the summary in its place. The mock answers that
// request as a model would, with a summary that keeps the user's
// request: the prompt's first line, which the next request then echoes.
func conformanceClaudeScript(failWord string) claudetest.Script {
	return func(q claudetest.Request) claudetest.Reply {
		last := claudetest.Unwrap(q.LastUserText())
		switch {
		case strings.Contains(last, failWord):
			return claudetest.Reply{Status: 400, ErrorType: "invalid_request_error"}
		case strings.Contains(last, "STEER_STREAM"):
			return claudetest.SlowReply(60, 50*time.Millisecond)
		case strings.Contains(last, claudetest.MarkSlowStream), strings.Contains(last, claudetest.MarkRemember):
			return claudetest.DefaultScript(q)
		case strings.HasPrefix(last, "Your task is to create a detailed summary of the conversation"):
			users := q.UserTexts()
			for i := len(users) - 2; i >= 0; i-- {
				if line := conformanceLine(users[i]); line != "" {
					return claudetest.Reply{Text: "The user asked:\n" + line}
				}
			}
		}
		if line := conformanceLine(last); line != "" {
			return claudetest.Reply{Text: "echo: " + line}
		}
		return claudetest.DefaultScript(q)
	}
}

// conformanceLine is the first line of text that starts with
// "conformance", or "".
func conformanceLine(text string) string {
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "conformance") {
			return line
		}
	}
	return ""
}

// TestACPBackendWithRealClaudeCodeACP: the backend driving the real
// claude-code-acp offline against claudetest's MockAnthropic, as a CLI
// the town's config serves with this backend.
func TestACPBackendWithRealClaudeCodeACP(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, acpPkg, "tthost-backend-acp")
	command := acptest.ClaudeCodeACPBinary(t)
	const failWord = "CONFORMANCE_MODEL_ERROR"
	mock := claudetest.NewMockAnthropic(t, conformanceClaudeScript(failWord))
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("claude-code-acp sent requests the mock does not serve: %v", other)
		}
	})
	env := acptest.ClaudeCodeACPEnv(claudetest.NewHome(t), mock)
	report := conformance.Check(context.Background(), conformance.Target{
		Path:      bin,
		CLI:       "claude-acp",
		Command:   command,
		Env:       env,
		PluginEnv: conformanceEnv(procs),
		Prompts: conformance.Prompts{Long: claudetest.MarkSlowStream, Fail: failWord, Echo: conformance.EchoFirstLine,
			Steer: "STEER_STREAM", SteerEcho: conformance.EchoFirstLine, Recall: claudetest.MarkRemember},
	}, conformanceOpts)
	for _, res := range report.Results {
		if res.Status == conformance.StatusFail {
			t.Errorf("%s failed: %s\nthe plugin's log:\n%s", res.Name, res.Message, res.Log)
		} else {
			t.Logf("%s: %s %s", res.Name, res.Status, res.Message)
		}
	}
}
