package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/codex/codextest"
	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The conformance suite against the Codex backend, as CI runs it: driving
// its fake app-server, and driving the real codex offline.

const codexPkg = "github.com/tthost/tthost/plugins/codex"

// opts gives turns room under -race on a small machine.
var conformanceOpts = conformance.Options{Timeout: 90 * time.Second}

// conformanceEnv marks the plugin's processes for the test's own leak check
// (beside the suite's) and keeps race-built children from idling at exit.
func conformanceEnv(procs *sdktest.Processes) []string {
	return []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}
}

// TestCodexBackendWithFakeAppServer: the Codex backend driving its fake
// app-server, which sleeps on SLEEP_MS=, echoes the turn's and steered
// texts at once on ECHO=1 (so the long turn shows it runs, and a steer that
// it arrived), fails on FAIL=1, recalls its thread on REMEMBER=1 (kept in
// FAKE_CODEX_STATE across processes, so a resume can prove it), and
// otherwise answers "handled turn".
func TestCodexBackendWithFakeAppServer(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, codexPkg, "tthost-backend-codex")
	fake := sdktest.Build(t, fakePkg, "fake-codex-app-server")
	conformance.Run(t, conformance.Target{
		Path:      bin,
		CLI:       "codex",
		Command:   fake,
		Env:       map[string]string{"FAKE_CODEX_STATE": t.TempDir()},
		PluginEnv: conformanceEnv(procs),
		Prompts: conformance.Prompts{Long: "SLEEP_MS=60000 ECHO=1", Fail: "FAIL=1", Echo: conformance.EchoNone,
			SteerEcho: conformance.EchoFull, Recall: "REMEMBER=1"},
	}, conformanceOpts)
}

// knownRealCodexDefects are checks the Codex backend fails against the
// real codex because of a defect in the backend, not in the suite, with
// the symptom their message shows. Add an entry only with the defect
// filed; until it is fixed the check may pass or fail with that symptom
// only. (cancel_bound was one: a cancel sent before codex's turn/started
// was lost; plugins/codex now sends it again once the turn is active.)
var knownRealCodexDefects = map[string]string{}

// TestCodexBackendWithRealCodex: the Codex backend driving the real codex
// CLI, offline against codextest's mock model. SLOW_STREAM makes a long
// turn (its ticks show that it runs); text steered into it becomes the
// last user message of codex's next request, which the mock echoes;
// REMEMBER lists the thread's earlier messages; the mock fails every
// request whose prompt holds the fail word.
func TestCodexBackendWithRealCodex(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, codexPkg, "tthost-backend-codex")
	codex := codextest.CodexBinary(t)
	const failWord = "CONFORMANCE_MODEL_ERROR"
	mock := codextest.NewMockModel(t, func(req codextest.Request) codextest.Reply {
		if strings.Contains(req.LastUserText(), failWord) {
			return codextest.Reply{Status: 500}
		}
		return codextest.DefaultScript(req)
	})
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("codex sent requests the mock does not serve: %v", other)
		}
	})
	home := codextest.NewCodexHome(t, mock)
	env := map[string]string{}
	for _, kv := range codextest.Env(home) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	report := conformance.Check(context.Background(), conformance.Target{
		Path:      bin,
		CLI:       "codex",
		Command:   codex + " exec --dangerously-bypass-approvals-and-sandbox",
		Env:       env,
		PluginEnv: conformanceEnv(procs),
		Prompts: conformance.Prompts{Long: codextest.MarkSlowStream, Fail: failWord, Echo: conformance.EchoFirstLine,
			Recall: codextest.MarkRemember},
	}, conformanceOpts)
	for _, res := range report.Results {
		switch symptom, known := knownRealCodexDefects[res.Name]; {
		case res.Status != conformance.StatusFail:
			t.Logf("%s: %s %s", res.Name, res.Status, res.Message)
		case known && strings.Contains(res.Message, symptom):
			t.Logf("%s: fails as known (a Codex backend defect, see knownRealCodexDefects): %s", res.Name, res.Message)
		default:
			t.Errorf("%s failed: %s\nthe plugin's log:\n%s", res.Name, res.Message, res.Log)
		}
	}
}
