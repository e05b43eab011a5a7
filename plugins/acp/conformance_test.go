package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/acp/acptest"
	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The conformance suite against the ACP backend, as CI runs it: driving
// the fake agent, and driving the real Gemini CLI offline.

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
