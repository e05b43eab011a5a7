package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/plugins/codex/codextest"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests drive the real `codex app-server` (the pinned @openai/codex,
// installed by `make test`) through the backend, offline: codex talks only
// to codextest's mock model on loopback. The fake app-server covers what
// codex will not do on demand (crashes, garbage, silence); these prove the
// protocol against the real thing.

// tinytownPresets are Tinytown's command lines for the two CLIs, after the
// codex binary: the backend derives the app-server's from them.
var tinytownPresets = map[string]string{
	cliCodex:     " exec --dangerously-bypass-approvals-and-sandbox",
	cliCodexMini: ` exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`,
}

// realRig is one test's offline codex: processes, mock model, CODEX_HOME.
type realRig struct {
	procs *sdktest.Processes
	mock  *codextest.MockModel
	home  string
	codex string // the native codex binary
}

func newRealRig(t *testing.T, script codextest.Script) *realRig {
	t.Helper()
	// Registered first, so that its check runs after the sessions' closes.
	procs := sdktest.TrackProcesses(t)
	codex := codextest.CodexBinary(t)
	mock := codextest.NewMockModel(t, script)
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("codex sent requests the mock does not serve: %v", other)
		}
	})
	return &realRig{procs: procs, mock: mock, home: codextest.NewCodexHome(t, mock), codex: codex}
}

// open opens a session on the real codex, configured the way Tinytown's
// preset configures it (the one-shot command line is turned into the
// app-server's), and closes it immediately at cleanup.
func (r *realRig) open(t *testing.T, workdir, resumeID string, options map[string]string) (*session, *recorder) {
	t.Helper()
	return r.openWith(t, cliCodex, workdir, resumeID, options)
}

func (r *realRig) openCLI(t *testing.T, cli string, options map[string]string) (*session, *recorder) {
	t.Helper()
	return r.openWith(t, cli, t.TempDir(), "", options)
}

func (r *realRig) openWith(t *testing.T, cli, workdir, resumeID string, options map[string]string) (*session, *recorder) {
	t.Helper()
	env := map[string]string{sdktest.MarkerEnv: r.procs.Marker()}
	for _, kv := range codextest.Env(r.home) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg := sdk.SessionConfig{
		CLIName:   cli,
		Command:   r.codex + tinytownPresets[cli],
		Workdir:   workdir,
		Env:       env,
		ResumeID:  resumeID,
		Options:   options,
		AgentName: "real",
		LogDir:    filepath.Join(workdir, "logs"),
	}
	rec := newRecorder(t)
	ss, err := newBackend().OpenSession(context.Background(), cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	s := ss.(*session)
	t.Cleanup(func() {
		if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if ready := rec.WaitReady(t); ready.RuntimeSessionID == "" {
		t.Fatalf("SessionReady without a thread id:\n%s", sdktest.Dump(rec.Events()))
	}
	return s, rec
}

func TestRealCodexRunsTurnsInOneAppServer(t *testing.T) {
	t.Parallel()
	r := newRealRig(t, nil)
	s, rec := r.open(t, t.TempDir(), "", nil)

	id, c, evs := runTurn(t, s, rec, "hello there")
	if c.Status != sdk.StatusCompleted || c.Summary != "echo: hello there" || sdktest.Output(evs, id) != "echo: hello there" {
		t.Fatalf("text turn %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	if u := sdktest.OfKind(evs, sdk.EventUsage, id); len(u) == 0 || u[len(u)-1].Usage.TotalTokens <= 0 {
		t.Errorf("no usage for the turn:\n%s", sdktest.Dump(evs))
	}

	id, c, evs = runTurn(t, s, rec, "now a TOOL_CALL please")
	if c.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, id), "tool output: hi") {
		t.Fatalf("tool turn %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(tools) != 1 || tools[0].Tool.Kind != "command" || !strings.Contains(tools[0].Tool.Name, "echo hi") ||
		tools[0].Tool.Status != "completed" || tools[0].Tool.ExitCode == nil || *tools[0].Tool.ExitCode != 0 {
		t.Fatalf("tool calls:\n%s", sdktest.Dump(tools))
	}
	if errs := sdktest.OfKind(evs, sdk.EventError, ""); len(errs) > 0 {
		t.Errorf("errors from a healthy codex:\n%s", sdktest.Dump(errs))
	}
}

func TestRealCodexSteersAndCancels(t *testing.T) {
	t.Parallel()
	r := newRealRig(t, nil)
	s, rec := r.open(t, t.TempDir(), "", nil)

	id := send(t, s, sdk.Input{Text: "SLOW_STREAM one"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "tick 1 ")
	if got := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT steer"}, sdk.DeliverySteered); got != id {
		t.Fatalf("steered into %s, want %s", got, id)
	}
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusCompleted || c.Summary != "echo: URGENT steer" {
		t.Fatalf("steered turn = %+v", c)
	}

	id = send(t, s, sdk.Input{Text: "SLOW_STREAM two"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "tick 1 ")
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusInterrupted {
		t.Fatalf("cancelled turn = %+v", c)
	}
	if _, c, _ := runTurn(t, s, rec, "after"); c.Summary != "echo: after" {
		t.Fatalf("turn after a cancel = %+v", c)
	}
}

func TestRealCodexResumesAThreadInANewAppServer(t *testing.T) {
	t.Parallel()
	r := newRealRig(t, nil)
	workdir := t.TempDir()
	s, rec := r.open(t, workdir, "", nil)
	thread := rec.WaitReady(t).RuntimeSessionID
	runTurn(t, s, rec, "the first message")
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}

	s, rec = r.open(t, workdir, thread, nil)
	if ready := rec.WaitReady(t); !ready.Resumed || ready.RuntimeSessionID != thread {
		t.Fatalf("SessionReady = %+v, want %s resumed", ready, thread)
	}
	if id, _, evs := runTurn(t, s, rec, "REMEMBER"); !strings.Contains(sdktest.Output(evs, id), "the first message") {
		t.Fatalf("the resumed thread lost its history: %q", sdktest.Output(evs, id))
	}

	_, rec = r.open(t, workdir, "019a0000-0000-7000-8000-000000000000", nil)
	if ready := rec.WaitReady(t); ready.Resumed || ready.RuntimeSessionID == "" || !strings.Contains(ready.ContextLostReason, "no rollout found") {
		t.Fatalf("SessionReady for an unknown thread = %+v", ready)
	}
}

func TestRealCodexApprovalsFollowThePolicy(t *testing.T) {
	t.Parallel()
	// The model runs `touch approved.txt`, which codex asks about under
	// the untrusted policy.
	script := func(req codextest.Request) codextest.Reply {
		if req.HasFunctionOutput() {
			return codextest.Reply{Text: "done"}
		}
		return codextest.Reply{Call: &codextest.FunctionCall{Name: "exec_command", Arguments: `{"cmd":"touch approved.txt"}`}}
	}
	for _, tt := range []struct{ policy, word, status string }{
		{"accept", "approved", "completed"},
		{"decline", "denied", "declined"},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()
			r := newRealRig(t, script)
			workdir := t.TempDir()
			s, rec := r.open(t, workdir, "", map[string]string{optApprovalPolicy: "untrusted", optCommandApproval: tt.policy})
			id, c, evs := runTurn(t, s, rec, "make the file")
			approvals := sdktest.OfKind(evs, sdk.EventApproval, id)
			if c.Status != sdk.StatusCompleted || len(approvals) != 1 || approvals[0].Approval.Kind != "command" ||
				approvals[0].Approval.Decision != tt.word || !strings.Contains(approvals[0].Approval.Description, "touch approved.txt") {
				t.Fatalf("turn %+v, want one %s command approval:\n%s", c, tt.word, sdktest.Dump(evs))
			}
			tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
			if len(tools) != 1 || tools[0].Tool.Status != tt.status {
				t.Errorf("tool calls, want one %s:\n%s", tt.status, sdktest.Dump(tools))
			}
			_, err := os.Stat(filepath.Join(workdir, "approved.txt"))
			if ran := err == nil; ran != (tt.policy == "accept") {
				t.Errorf("the command ran: %v, want %v", ran, tt.policy == "accept")
			}
		})
	}
}

func TestRealCodexMiniSendsItsModelAndEffort(t *testing.T) {
	t.Parallel()
	r := newRealRig(t, nil)
	// The model for the first turn comes from thread/start, the effort
	// from its per-thread config; turn/start repeats both.
	s, rec := r.openCLI(t, cliCodexMini, nil)
	if _, c, _ := runTurn(t, s, rec, "hi"); c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %+v", c)
	}
	reqs := r.mock.Requests()
	if len(reqs) != 1 || reqs[0].Model != miniModel || reqs[0].ReasoningEffort != miniEffort {
		t.Fatalf("model requests %d; model %q effort %q; want %s at %s", len(reqs), reqs[0].Model, reqs[0].ReasoningEffort, miniModel, miniEffort)
	}
}
