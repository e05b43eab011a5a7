package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests drive the backend against the fake agent
// (internal/fakeagent), for the protocol's mapping and its faults; the
// real agents are in realgemini_test.go.

func TestHandshakeAdvertisesHonestCapabilitiesAndMapsATextTurn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	ready := rec.WaitReady(t)
	if !strings.HasPrefix(ready.RuntimeSessionID, "fake-") || ready.Resumed || ready.ContextLostReason != "" || ready.SteerMode != sdk.SteerQueue {
		t.Fatalf("SessionReady = %+v", ready)
	}
	msgs := f.messages(t)
	var init struct {
		JSONRPC string `json:"jsonrpc"`
		Params  struct {
			ProtocolVersion    int `json:"protocolVersion"`
			ClientCapabilities struct {
				FS       map[string]bool `json:"fs"`
				Terminal bool            `json:"terminal"`
			} `json:"clientCapabilities"`
			ClientInfo map[string]string `json:"clientInfo"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(msgs[0].Raw), &init); err != nil || msgs[0].Method != "initialize" {
		t.Fatalf("first message %s: %v", msgs[0].Raw, err)
	}
	p := init.Params
	if init.JSONRPC != "2.0" || p.ProtocolVersion != 1 || p.ClientCapabilities.FS["readTextFile"] || p.ClientCapabilities.FS["writeTextFile"] ||
		p.ClientCapabilities.Terminal || p.ClientInfo["name"] != "tthost" || p.ClientInfo["version"] == "" {
		t.Errorf("initialize = %s", msgs[0].Raw)
	}
	if m := f.methods(t); !slices.Equal(m, []string{"initialize", "session/new"}) {
		t.Errorf("methods = %v", m)
	}

	id, c, evs := runTurn(t, s, rec, "hello there\nsecond line")
	if c.Status != sdk.StatusCompleted || c.Summary != "echo: hello there" || sdktest.Output(evs, id) != "echo: hello there" {
		t.Fatalf("turn %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	u := sdktest.OfKind(evs, sdk.EventUsage, id)
	if len(u) != 1 || u[0].Usage.InputTokens != 10 || u[0].Usage.OutputTokens != 5 || u[0].Usage.TotalTokens != 15 {
		t.Errorf("usage:\n%s", sdktest.Dump(u))
	}
	// The available_commands_update after session/new is no turn's output.
	if codes := errorsOf(evs); len(codes) > 0 {
		t.Errorf("errors: %v\n%s", codes, sdktest.Dump(evs))
	}
	if got := f.prompts(t); len(got) != 1 || got[0] != "hello there\nsecond line" {
		t.Errorf("prompts = %q", got)
	}
}

func TestToolCallsAreUpsertsReportedOncePerStatus(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id, c, evs := runTurn(t, s, rec, "TOOL THOUGHT PLAN USAGE_UPDATE")
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn %+v", c)
	}
	tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
	var got []string
	for _, e := range tools {
		if e.Tool.ID != "read-1" || e.Tool.Kind != "read" || e.Tool.Name != "notes.txt" {
			t.Errorf("tool call %+v", e.Tool)
		}
		got = append(got, e.Tool.Status)
	}
	if !slices.Equal(got, []string{"pending", "in_progress", "completed"}) {
		t.Errorf("tool statuses %v, want pending, in_progress, completed (no duplicate):\n%s", got, sdktest.Dump(tools))
	}
	if out := sdktest.Output(evs, id); strings.Contains(out, "pondering") {
		t.Errorf("reasoning leaked into the output: %q", out)
	}
}

func TestTranscriptHoldsPlanAndReasoning(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	path := t.TempDir() + "/turn.log"
	id := send(t, s, sdk.Input{Text: "PLAN THOUGHT TOOL", TranscriptPath: path}, sdk.DeliveryStarted).TurnID
	rec.WaitCompleted(t, id)
	b, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plan: [completed] look around; [in_progress] answer", "thinking: pondering deeply", "tool read `notes.txt`: completed", "echo: PLAN THOUGHT TOOL"} {
		if !strings.Contains(b, want) {
			t.Errorf("transcript lacks %q:\n%s", want, b)
		}
	}
}

func TestStopReasonsMapToOutcomes(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	for _, tc := range []struct {
		text   string
		status sdk.TurnStatus
		err    string
	}{
		{"MAXTOK", sdk.StatusCompleted, ""},
		{"REFUSE", sdk.StatusFailed, "refused"},
		{"FAIL", sdk.StatusFailed, "the fake agent failed as asked"},
	} {
		_, c, _ := runTurn(t, s, rec, tc.text)
		if c.Status != tc.status || !strings.Contains(c.Error, tc.err) {
			t.Errorf("%s: %+v, want %s with %q", tc.text, c, tc.status, tc.err)
		}
	}
}

func TestSteerQueueModePromptsTheUrgentTextAfterTheRunningPrompt(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_FIRST_MS=600 first"}, sdk.DeliveryStarted).TurnID
	rec.WaitOutput(t, id, "working")
	d := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "urgent one"}, sdk.DeliverySteered)
	if d.TurnID != id || d.SteerMode != sdk.SteerQueue {
		t.Fatalf("receipt %+v, want steered into %s by queue", d, id)
	}
	c, evs := rec.WaitCompleted(t, id)
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || !strings.Contains(out, "echo: SLEEP_FIRST_MS=600 first") || !strings.Contains(out, "echo: urgent one") || c.Summary != "echo: urgent one" {
		t.Fatalf("turn %+v, output %q:\n%s", c, out, sdktest.Dump(evs))
	}
	if p := f.prompts(t); !slices.Equal(p, []string{"SLEEP_FIRST_MS=600 first", "urgent one"}) {
		t.Errorf("prompts = %q", p)
	}
	if codes := errorsOf(evs); !slices.Equal(codes, []string{"steer_queued"}) {
		t.Errorf("error events %v, want one steer_queued notice", codes)
	}
	sdktest.CheckTurnOrder(t, rec.WaitFor(t, "awaiting", lastIs(sdk.EventAwaitingInput)), id, true)
}

func TestSteerRestartModeCancelsAndPromptsMerged(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{options: map[string]string{"steer_mode": "restart"}})
	if m := rec.WaitReady(t).SteerMode; m != sdk.SteerRestart {
		t.Fatalf("SessionReady steer mode %q", m)
	}
	id := send(t, s, sdk.Input{Text: "SLEEP_FIRST_MS=60000 the task"}, sdk.DeliveryStarted).TurnID
	rec.WaitOutput(t, id, "working")
	d := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "urgent two"}, sdk.DeliverySteered)
	if d.TurnID != id || d.SteerMode != sdk.SteerRestart {
		t.Fatalf("receipt %+v", d)
	}
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusCompleted || c.Summary != "echo: SLEEP_FIRST_MS=60000 the task" {
		t.Fatalf("turn %+v:\n%s", c, sdktest.Dump(evs))
	}
	if p := f.prompts(t); len(p) != 2 || p[1] != "SLEEP_FIRST_MS=60000 the task\n\nurgent two" {
		t.Errorf("prompts = %q, want the task then the task and the urgent text merged", p)
	}
	if m := f.methods(t); !slices.Contains(m, "session/cancel") {
		t.Errorf("no session/cancel: %v", m)
	}
	if codes := errorsOf(evs); !slices.Equal(codes, []string{"steer_restarted"}) {
		t.Errorf("error events %v", codes)
	}
}

func TestCancelEndsTheTurnInterruptedAndTheAgentStays(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	pid := s.current().proc.Pid()
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted).TurnID
	rec.WaitOutput(t, id, "working")
	start := time.Now()
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	c, _ := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusInterrupted || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled turn %+v after %v", c, time.Since(start))
	}
	_, c, _ = runTurn(t, s, rec, "after")
	if c.Status != sdk.StatusCompleted || s.current().proc.Pid() != pid {
		t.Fatalf("next turn %+v in process %d (was %d)", c, s.current().proc.Pid(), pid)
	}
	if d := send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryNoTurn); d.TurnID != "" {
		t.Errorf("idle cancel %+v", d)
	}
}

// TestCancelRacingTheEndKeepsTheOutcome: a cancel whose turn ended first
// finds no turn, and the turn keeps its outcome.
func TestCancelRacingTheEndKeepsTheOutcome(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	for i := range 20 {
		id := send(t, s, sdk.Input{Text: "quick"}, sdk.DeliveryStarted).TurnID
		d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel})
		if err != nil {
			t.Fatal(err)
		}
		c, evs := rec.WaitCompleted(t, id)
		switch {
		case d.Kind == sdk.DeliveryNoTurn && c.Status != sdk.StatusCompleted:
			t.Fatalf("round %d: a cancel that found no turn, and the turn ended %+v", i, c)
		case d.Kind == sdk.DeliveryCancelled && c.Status != sdk.StatusInterrupted:
			t.Fatalf("round %d: cancelled, and the turn ended %+v:\n%s", i, c, sdktest.Dump(evs))
		}
		rec.WaitFor(t, "awaiting", lastIs(sdk.EventAwaitingInput))
	}
}

func TestPermissionPolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		option, chunk, decision string
	}{
		{"", "permission proceed_once", "approved"},
		{"allow_always", "permission proceed_always", "approved_for_session"},
		{"reject", "permission rejected", "denied"},
	} {
		t.Run("permission="+tc.option, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			opts := map[string]string{}
			if tc.option != "" {
				opts["permission"] = tc.option
			}
			s, rec, f := open(t, procs, openOpts{options: opts})
			id, c, evs := runTurn(t, s, rec, "PERMISSION")
			if c.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, id), tc.chunk) {
				t.Fatalf("turn %+v, output %q", c, sdktest.Output(evs, id))
			}
			a := sdktest.OfKind(evs, sdk.EventApproval, id)
			if len(a) != 1 || a[0].Approval.Decision != tc.decision || a[0].Approval.Kind != "permission:command" ||
				a[0].Approval.Description != "touch made_by_fake.txt" || a[0].Approval.RequestID != "0" || a[0].Approval.TimedOut {
				t.Fatalf("approvals:\n%s", sdktest.Dump(a))
			}
			// The Approval event precedes the tool call the answer allowed.
			if tools := sdktest.OfKind(evs, sdk.EventToolCall, id); len(tools) > 0 && tools[0].Seq < a[0].Seq {
				t.Errorf("tool call before the approval:\n%s", sdktest.Dump(evs))
			}
			if ans := f.answers(t); len(ans) != 1 || string(ans[0].ID) != "0" {
				t.Errorf("answers %v", ans)
			}
		})
	}
}

func TestPermissionTimeoutRejects(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{
		options: map[string]string{"approval_timeout_ms": "100"},
		tweak: func(s *session) {
			s.decide = func(ctx context.Context, _ permissionRequest) (permissionDecision, error) {
				<-ctx.Done()
				return permissionDecision{}, ctx.Err()
			}
		},
	})
	id, c, evs := runTurn(t, s, rec, "PERMISSION")
	a := sdktest.OfKind(evs, sdk.EventApproval, id)
	if c.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, id), "permission rejected") ||
		len(a) != 1 || !a[0].Approval.TimedOut || a[0].Approval.Decision != "denied" {
		t.Fatalf("turn %+v:\n%s", c, sdktest.Dump(evs))
	}
}

func TestCancelAnswersAPendingPermissionCancelled(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	asked := make(chan struct{})
	s, rec, f := open(t, procs, openOpts{tweak: func(s *session) {
		s.decide = func(ctx context.Context, _ permissionRequest) (permissionDecision, error) {
			close(asked)
			<-ctx.Done()
			return permissionDecision{}, ctx.Err()
		}
	}})
	id := send(t, s, sdk.Input{Text: "PERMISSION"}, sdk.DeliveryStarted).TurnID
	<-asked
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusInterrupted {
		t.Fatalf("turn %+v", c)
	}
	if a := sdktest.OfKind(evs, sdk.EventApproval, id); len(a) != 1 || a[0].Approval.Decision != "abort" || a[0].Approval.TimedOut {
		t.Errorf("approvals:\n%s", sdktest.Dump(a))
	}
	ans := f.answers(t)
	if len(ans) != 1 || !strings.Contains(string(ans[0].Result), `"outcome":"cancelled"`) {
		t.Errorf("answers: %s", dumpReceived(ans))
	}
}

func TestOtherAgentRequestsGetMethodNotFoundAtOnce(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id, c, evs := runTurn(t, s, rec, "FS")
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || strings.Count(out, `"code":-32601`) != 2 {
		t.Fatalf("turn %+v, output %q", c, out)
	}
	a := sdktest.OfKind(evs, sdk.EventApproval, id)
	if len(a) != 2 || a[0].Approval.Kind != "fs/read_text_file" || a[1].Approval.Kind != "terminal/create" || a[0].Approval.Decision != "unsupported" {
		t.Errorf("approvals:\n%s", sdktest.Dump(a))
	}
}

func TestMalformedLinesAreReportedNotFatal(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	_, c, evs := runTurn(t, s, rec, "GARBAGE")
	if c.Status != sdk.StatusCompleted || !slices.Contains(errorsOf(evs), "invalid_output") {
		t.Fatalf("turn %+v:\n%s", c, sdktest.Dump(evs))
	}
}

func TestLoadReplayIsNotTurnOutput(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	f := newFake(t)
	workdir := t.TempDir()
	s, rec, _ := open(t, procs, openOpts{fake: f, workdir: workdir})
	runTurn(t, s, rec, "one")
	runTurn(t, s, rec, "two")
	saved := rec.WaitReady(t).RuntimeSessionID
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}

	// The fake answers session/load after the first replayed chunk and
	// sends the rest 50 ms apart.
	s2, rec2, _ := open(t, procs, openOpts{fake: f, workdir: workdir, resumeID: saved, env: map[string]string{"FAKE_ACP_REPLAY_MS": "50"}})
	ready := rec2.WaitReady(t)
	if !ready.Resumed || ready.RuntimeSessionID != saved || ready.ContextLostReason != "" {
		t.Fatalf("SessionReady = %+v", ready)
	}
	id, c, evs := runTurn(t, s2, rec2, "REMEMBER")
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || out != "I remember: one | two" {
		t.Fatalf("turn %+v, output %q (replayed history must not be output):\n%s", c, out, sdktest.Dump(evs))
	}
}

func TestLoadFailureStartsANewSessionAndSaysTheContextIsLost(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{resumeID: "fake-gone"})
	ready := rec.WaitReady(t)
	if ready.Resumed || ready.RuntimeSessionID == "fake-gone" || !strings.Contains(ready.ContextLostReason, "Invalid session identifier") {
		t.Fatalf("SessionReady = %+v", ready)
	}
	if m := f.methods(t); !slices.Equal(m, []string{"initialize", "session/load", "session/new"}) {
		t.Errorf("methods %v", m)
	}
	if _, c, _ := runTurn(t, s, rec, "hi"); c.Status != sdk.StatusCompleted {
		t.Fatalf("turn %+v", c)
	}

	_, rec2, _ := open(t, procs, openOpts{resumeID: "fake-x", env: map[string]string{"FAKE_ACP_NO_LOAD": "1"}})
	if r := rec2.WaitReady(t); r.Resumed || !strings.Contains(r.ContextLostReason, "does not declare loadSession") {
		t.Fatalf("SessionReady without loadSession = %+v", r)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	// Required and not configured: a clear start error naming the methods.
	_, rec, _ := open(t, procs, openOpts{starting: true, env: map[string]string{"FAKE_ACP_AUTH": "1"}})
	evs := rec.WaitExited(t)
	errs := sdktest.OfKind(evs, sdk.EventError, "")
	if len(errs) != 1 || errs[0].Error.Code != "start_failed" || !errs[0].Error.Fatal ||
		!strings.Contains(errs[0].Error.Message, "requires authentication") || !strings.Contains(errs[0].Error.Message, `"fake-key"`) ||
		!strings.Contains(errs[0].Error.Message, "auth_method") {
		t.Fatalf("events:\n%s", sdktest.Dump(evs))
	}
	// Configured: authenticate, then session/new.
	s, rec2, f := open(t, procs, openOpts{env: map[string]string{"FAKE_ACP_AUTH": "1"}, options: map[string]string{"auth_method": "fake-key"}})
	if m := f.methods(t); !slices.Equal(m, []string{"initialize", "authenticate", "session/new"}) {
		t.Errorf("methods %v", m)
	}
	if _, c, _ := runTurn(t, s, rec2, "hi"); c.Status != sdk.StatusCompleted {
		t.Fatalf("turn %+v", c)
	}
	// A method the agent does not offer.
	_, rec3, _ := open(t, procs, openOpts{starting: true, env: map[string]string{"FAKE_ACP_AUTH": "1"}, options: map[string]string{"auth_method": "nope"}})
	if evs := rec3.WaitExited(t); !strings.Contains(sdktest.Dump(evs), `auth_method "nope" is not one of`) {
		t.Fatalf("events:\n%s", sdktest.Dump(evs))
	}
}

func TestChooseAuthFromTheEnvironment(t *testing.T) {
	t.Parallel()
	methods := []authMethod{{ID: "oauth-personal"}, {ID: "gemini-api-key"}, {ID: "gateway"}}
	got, err := chooseAuth(settings{env: map[string]string{"GEMINI_API_KEY": "k"}}, methods)
	if err != nil || got != "gemini-api-key" {
		t.Fatalf("chooseAuth = %q, %v", got, err)
	}
	if _, err := chooseAuth(settings{env: map[string]string{"GEMINI_API_KEY": "", "GOOGLE_GEMINI_BASE_URL": "", "GOOGLE_API_KEY": ""}}, methods); err == nil {
		t.Fatal("no credential, yet a method was chosen")
	}
}

func TestAnotherProtocolVersionIsRefused(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	_, rec, _ := open(t, procs, openOpts{starting: true, env: map[string]string{"FAKE_ACP_VERSION": "2"}})
	evs := rec.WaitExited(t)
	if !strings.Contains(sdktest.Dump(evs), "speaks ACP protocol version 2; tthost speaks version 1") {
		t.Fatalf("events:\n%s", sdktest.Dump(evs))
	}
	assertGone(t, procs)
}

func TestAStalledTurnIsCancelledAndFailsTurnStalled(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{options: map[string]string{"stall_timeout_ms": "300"}})
	pid := s.current().proc.Pid()
	id := send(t, s, sdk.Input{Text: "SILENT_MS=60000"}, sdk.DeliveryStarted).TurnID
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusFailed || !strings.Contains(c.Error, "answered the cancel") || !slices.Contains(errorsOf(evs), "turn_stalled") {
		t.Fatalf("turn %+v:\n%s", c, sdktest.Dump(evs))
	}
	if _, c, _ := runTurn(t, s, rec, "next"); c.Status != sdk.StatusCompleted || s.current().proc.Pid() != pid {
		t.Fatalf("next turn %+v", c)
	}
}

func TestAStalledAgentThatIgnoresTheCancelIsRestarted(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{options: map[string]string{"stall_timeout_ms": "300"}})
	ready := rec.WaitReady(t)
	pid := s.current().proc.Pid()
	runTurn(t, s, rec, "before")
	id := send(t, s, sdk.Input{Text: "HANG"}, sdk.DeliveryStarted).TurnID
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusFailed || !strings.Contains(c.Error, "killed and restarted") || !slices.Contains(errorsOf(evs), "turn_stalled") {
		t.Fatalf("turn %+v:\n%s", c, sdktest.Dump(evs))
	}
	if sdktest.ProcessAlive(pid) {
		t.Errorf("the stalled agent %d is still alive", pid)
	}
	id2, c2, evs2 := runTurn(t, s, rec, "REMEMBER")
	if c2.Status != sdk.StatusCompleted || s.current().proc.Pid() == pid || !strings.Contains(sdktest.Output(evs2, id2), "before") {
		t.Fatalf("turn after the restart %+v, output %q:\n%s", c2, sdktest.Output(evs2, id2), sdktest.Dump(evs2))
	}
	if !slices.Contains(errorsOf(evs2), "agent_restarted") || s.sessionID != ready.RuntimeSessionID {
		t.Errorf("restart not reported, or the session changed:\n%s", sdktest.Dump(evs2))
	}
}

func TestAnAgentThatDiesLosesTheSession(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "DIE"}, sdk.DeliveryStarted).TurnID
	evs := rec.WaitExited(t)
	c, _ := rec.WaitCompleted(t, id)
	errs := sdktest.OfKind(evs, sdk.EventError, "")
	if c.Status != sdk.StatusFailed || len(errs) == 0 || !errs[0].Error.Fatal || errs[0].Error.Code != "cli_exited" ||
		!strings.Contains(errs[0].Error.Message, "exit status 3") || errs[0].Seq > find(evs, sdk.EventTurnCompleted) {
		t.Fatalf("events:\n%s", sdktest.Dump(evs))
	}
	if ex := evs[len(evs)-1]; ex.Exited.Reason != sdk.ExitCLIExited {
		t.Errorf("exited %+v", ex.Exited)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("Send after the end = %v", err)
	}
	assertGone(t, procs)
}

func TestCloseLeavesNoProcess(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000 IGNORE_CANCEL"}, sdk.DeliveryStarted).TurnID
	rec.WaitOutput(t, id, "working")
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	c, _ := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusInterrupted {
		t.Errorf("turn %+v", c)
	}
	rec.WaitExited(t)
	assertGone(t, procs)
}

func TestCommandAndOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ cli, command, want string }{
		{"gemini", "gemini", "exec gemini --acp"},
		{"gemini", "gemini --yolo -m x", "exec gemini --yolo -m x --acp"},
		{"gemini", "gemini --acp", "exec gemini --acp"},
		{"gemini", "FOO=1 /opt/bin/gemini --experimental-acp", "exec FOO=1 /opt/bin/gemini --experimental-acp"},
		{"claude", "claude-code-acp", "exec claude-code-acp"},
		{"qwen", "qwen --acp | tee log", "qwen --acp | tee log"},
	} {
		argv, _ := agentCommand(tc.cli, tc.command)
		if argv[2] != tc.want {
			t.Errorf("agentCommand(%q, %q) = %q, want %q", tc.cli, tc.command, argv[2], tc.want)
		}
	}
	base := sdk.SessionConfig{CLIName: "x", Command: "agent", Workdir: t.TempDir()}
	for opts, want := range map[string]string{
		`{"steer_mode":"sideways"}`: "steer_mode",
		`{"bogus":"1"}`:             `unknown option "bogus"`,
		`{"stall_timeout_ms":"0"}`:  "stall_timeout_ms",
		`{"permission":"maybe"}`:    "permission",
	} {
		cfg := base
		if err := json.Unmarshal([]byte(opts), &cfg.Options); err != nil {
			t.Fatal(err)
		}
		if _, err := validate(cfg); !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("options %s: %v", opts, err)
		}
	}
	gem := base
	gem.CLIName, gem.Command = "gemini", "gemini"
	if s, err := validate(gem); err != nil || !s.gemini || !slices.Contains(s.extraEnv, "GEMINI_CLI_NO_RELAUNCH=true") {
		t.Errorf("gemini settings %+v, %v", s, err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	d, err := newBackend().Describe(context.Background())
	if err != nil || d.Name != "acp" {
		t.Fatal(d, err)
	}
	for _, name := range []string{"gemini", "claude-code-acp"} {
		cli, ok := d.Lookup(name)
		if !ok || !cli.Has(sdk.CapPersistent) || !cli.Has(sdk.CapSteer) || !cli.Has(sdk.CapResume) || !cli.Has(sdk.CapApprovals) {
			t.Errorf("Lookup(%q) = %+v, %v", name, cli, ok)
		}
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(d.OptionsSchema), &schema); err != nil {
		t.Fatal(err)
	}
	props := schema["properties"].(map[string]any)
	for _, k := range optionKeys() {
		if props[k] == nil {
			t.Errorf("schema lacks %s", k)
		}
	}
	if len(props) != len(optionKeys()) {
		t.Errorf("schema has %d options, the code %d", len(props), len(optionKeys()))
	}
}

func lastIs(kind sdk.EventKind) func([]sdk.Event) bool {
	return func(evs []sdk.Event) bool { return len(evs) > 0 && evs[len(evs)-1].Kind == kind }
}

func find(evs []sdk.Event, kind sdk.EventKind) uint64 {
	for _, e := range evs {
		if e.Kind == kind {
			return e.Seq
		}
	}
	return 1 << 62
}
