package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
	"github.com/tthost/tthost/sdk/sdktest"
)

// Unit tests of the Claude backend driving fakeclaude, the fault-injection
// stand-in (see its doc for the words it reacts to).

func TestTurnEventsInOrder(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	id, c, evs := runTurn(t, s, rec, "TOOL please")
	if c.Status != sdk.StatusCompleted || c.Summary != "handled: TOOL please" {
		t.Fatalf("%+v", c)
	}
	var kinds []string
	for _, e := range evs {
		if e.TurnID == id {
			kinds = append(kinds, string(e.Kind))
		}
	}
	want := "turn_started tool_call tool_call assistant_delta usage turn_completed"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("events\n got %s\nwant %s\n%s", got, want, sdktest.Dump(evs))
	}
	// As root with bypass, the session says once that IS_SANDBOX is set.
	notices := 0
	for _, e := range evs {
		if e.Kind == sdk.EventError && e.Error.Code == "root_sandbox" {
			notices++
		}
	}
	if want := map[bool]int{true: 1, false: 0}[os.Geteuid() == 0]; notices != want {
		t.Errorf("%d root_sandbox notices, want %d", notices, want)
	}
	u := sdktest.OfKind(evs, sdk.EventUsage, id)[0].Usage
	if u.InputTokens != 105 || u.CachedInputTokens != 5 || u.OutputTokens != 10 || u.TotalTokens != 115 {
		t.Errorf("usage %+v", *u)
	}
}

func TestSteerFoldedIntoTheTurn(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=2000 FOLD"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "working")
	d, err := s.Send(waitCtx(t), sdk.Input{Kind: sdk.InputUrgent, Text: "urgent bit"})
	if err != nil || d.Kind != sdk.DeliverySteered || d.TurnID != id || d.SteerMode != sdk.SteerNative {
		t.Fatalf("steer: %+v, %v", d, err)
	}
	if m := rec.WaitReady(t).SteerMode; m != sdk.SteerNative {
		t.Errorf("SessionReady.SteerMode %q", m)
	}
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, id), "folded: urgent bit") {
		t.Fatalf("%+v %q", c, sdktest.Output(evs, id))
	}
	if codes := errorsOf(evs, id); len(codes) != 0 {
		t.Errorf("errors %v", codes)
	}
}

func TestSteerQueuedIsReported(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=1000"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "working")
	send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "later bit"}, sdk.DeliverySteered)
	c, evs := rec.WaitCompleted(t, id)
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || !strings.Contains(out, "handled: SLEEP_MS=1000") || !strings.Contains(out, "handled: later bit") {
		t.Fatalf("%+v %q", c, out)
	}
	if codes := errorsOf(evs, id); len(codes) != 1 || codes[0] != "steer_queued" {
		t.Errorf("errors %v, want [steer_queued]", codes)
	}
	// Only one TurnCompleted, after the follow-up's result.
	if n := len(sdktest.OfKind(evs, sdk.EventTurnCompleted, id)); n != 1 {
		t.Errorf("%d completions", n)
	}
}

func TestCancelInterruptsAndKeepsTheProcess(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	pid := pidOf(s)
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "working")
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusInterrupted {
		t.Fatalf("%+v", c)
	}
	// After the result there is nothing to cancel.
	if err := s.cancel(context.Background(), nil); !errors.Is(err, plugin.ErrTurnEnded) {
		t.Errorf("driver cancel after the end: %v", err)
	}
	if d, err := s.Send(waitCtx(t), sdk.Input{Kind: sdk.InputCancel}); err != nil || d.Kind != sdk.DeliveryNoTurn {
		t.Errorf("cancel after the end: %+v %v", d, err)
	}
	_, c, _ := runTurn(t, s, rec, "next")
	if c.Status != sdk.StatusCompleted || pidOf(s) != pid {
		t.Errorf("next turn %+v in pid %d (was %d)", c, pidOf(s), pid)
	}
}

func TestApprovals(t *testing.T) {
	for _, tt := range []struct {
		name, policy, decision, answer string
		block, timedOut                bool
	}{
		{"allow", "allow", "approved", "approval: allow", false, false},
		{"deny", "deny", "denied", "approval: deny", false, false},
		{"timeout", "allow", "denied", "approval: deny", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			procs := sdktest.TrackProcesses(t)
			o := openOpts{options: map[string]string{optPermissionMode: permPrompt, optToolApproval: tt.policy, optApprovalTimeout: "200"}}
			if tt.block {
				o.tweak = func(s *session) {
					s.decide = func(ctx context.Context, _ approvalRequest) (bool, error) { <-ctx.Done(); return true, ctx.Err() }
				}
			}
			s, rec := open(t, procs, o)
			id, c, evs := runTurn(t, s, rec, "ASK")
			if c.Summary != tt.answer {
				t.Errorf("claude was answered %q, want %q", c.Summary, tt.answer)
			}
			apps := sdktest.OfKind(evs, sdk.EventApproval, id)
			if len(apps) != 1 || apps[0].Approval.Decision != tt.decision || apps[0].Approval.TimedOut != tt.timedOut ||
				apps[0].Approval.Description != "Bash: touch x" {
				t.Errorf("approvals:\n%s", sdktest.Dump(evs))
			}
		})
	}
}

// TestOtherRequestsAreRefused: a request of claude's the backend does not
// serve is answered with an error at once, so claude never waits on it.
func TestOtherRequestsAreRefused(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	_, c, evs := runTurn(t, s, rec, "OTHER_REQ")
	if c.Summary != "answered: error" {
		t.Errorf("claude was answered %q", c.Summary)
	}
	apps := sdktest.OfKind(evs, sdk.EventApproval, "")
	if len(apps) != 1 || apps[0].Approval.Kind != "mcp_message" || apps[0].Approval.Decision != "unsupported" {
		t.Errorf("approvals:\n%s", sdktest.Dump(evs))
	}
}

func TestStallAnsweredByInterrupt(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{options: map[string]string{optStallTimeout: "1"}})
	pid := pidOf(s)
	id := send(t, s, sdk.Input{Text: "HANG_SOFT"}, sdk.DeliveryStarted)
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusFailed || !strings.Contains(c.Error, "printed nothing") {
		t.Fatalf("%+v", c)
	}
	if codes := errorsOf(evs, id); len(codes) != 1 || codes[0] != "turn_stalled" {
		t.Errorf("errors %v", codes)
	}
	_, c, _ = runTurn(t, s, rec, "after")
	if c.Status != sdk.StatusCompleted || pidOf(s) != pid {
		t.Errorf("next turn %+v, pid %d (was %d)", c, pidOf(s), pid)
	}
}

func TestStallRestartsClaude(t *testing.T) {
	for _, tt := range []struct{ name, first, hung string }{
		{"no result", "", "HANG"},
		{"hang after result", "HANG_AFTER", "anything"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			procs := sdktest.TrackProcesses(t)
			starts := filepath.Join(t.TempDir(), "starts")
			s, rec := open(t, procs, openOpts{options: map[string]string{optStallTimeout: "1"}, env: map[string]string{"FAKE_CLAUDE_STARTS": starts}})
			sid := rec.WaitReady(t).RuntimeSessionID
			pid := pidOf(s)
			if tt.first != "" {
				runTurn(t, s, rec, tt.first)
			}
			id := send(t, s, sdk.Input{Text: tt.hung}, sdk.DeliveryStarted)
			c, evs := rec.WaitCompleted(t, id)
			if c.Status != sdk.StatusFailed || !strings.Contains(c.Error, "restarted") {
				t.Fatalf("%+v\n%s", c, sdktest.Dump(evs))
			}
			if codes := errorsOf(evs, id); len(codes) != 1 || codes[0] != "turn_stalled" {
				t.Errorf("errors %v", codes)
			}
			if sdktest.ProcessAlive(pid) {
				t.Errorf("the hung claude %d is alive", pid)
			}
			b, _ := os.ReadFile(starts)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], "--session-id="+sid) || !strings.Contains(lines[1], "--resume="+sid) {
				t.Errorf("starts:\n%s", b)
			}
			_, c, _ = runTurn(t, s, rec, "after the restart")
			if c.Status != sdk.StatusCompleted || c.Summary != "handled: after the restart" {
				t.Errorf("next turn %+v", c)
			}
		})
	}
}

func TestClaudeDiesMidTurn(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "DIE"}, sdk.DeliveryStarted)
	evs := rec.WaitExited(t)
	c, _ := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusFailed || !strings.Contains(c.Error, "exit status 3") {
		t.Errorf("%+v", c)
	}
	fatal := false
	for _, e := range evs {
		if e.Kind == sdk.EventError && e.Error.Fatal && e.Error.Code == "cli_exited" {
			fatal = true
		}
	}
	if !fatal {
		t.Errorf("no fatal cli_exited:\n%s", sdktest.Dump(evs))
	}
	if _, err := s.Send(waitCtx(t), sdk.Input{Kind: sdk.InputTurn, Text: "more"}); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("Send after the end: %v", err)
	}
	assertGone(t, procs)
}

func TestMalformedLineIsAnError(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	id, c, evs := runTurn(t, s, rec, "MALFORMED")
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("%+v", c)
	}
	if codes := errorsOf(evs, id); len(codes) != 1 || codes[0] != "invalid_output" {
		t.Errorf("errors %v", codes)
	}
}

func TestResumeOfAGoneSessionStartsFresh(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	state := t.TempDir()
	s, rec := open(t, procs, openOpts{resumeID: "4b0c1f6e-0000-4000-8000-000000000000", env: map[string]string{"FAKE_CLAUDE_STATE": state}})
	r := rec.WaitReady(t)
	if r.Resumed || r.RuntimeSessionID == "" || !strings.Contains(r.ContextLostReason, "No conversation found") {
		t.Fatalf("%+v", r)
	}
	runTurn(t, s, rec, "fresh")
	if err := s.Close(waitCtx(t), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	_, rec2 := open(t, procs, openOpts{resumeID: r.RuntimeSessionID, env: map[string]string{"FAKE_CLAUDE_STATE": state}})
	if r2 := rec2.WaitReady(t); !r2.Resumed || r2.RuntimeSessionID != r.RuntimeSessionID {
		t.Errorf("resume %+v", r2)
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	s, rec := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "HANG"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "working")
	start := time.Now()
	if err := s.Close(waitCtx(t), sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusInterrupted {
		t.Errorf("%+v", c)
	}
	rec.WaitExited(t)
	assertGone(t, procs)
	t.Logf("closed a hung claude in %v", time.Since(start).Round(time.Millisecond))
}

func FuzzDecodeLine(f *testing.F) {
	f.Add(`{"type":"result","subtype":"success","usage":{"input_tokens":1},"total_cost_usd":0.1}`)
	f.Add(`{"type":"assistant","message":{"id":"m","content":[{"type":"tool_use","id":"t","name":"Bash","input":{"command":"ls"}}]}}`)
	f.Add(`{"type":"user","message":{"content":"plain"},"isReplay":true,"uuid":"u"}`)
	f.Add(`{"type":"control_request","request_id":"r","request":{"subtype":"can_use_tool","tool_name":"Write","input":{"file_path":"/x"}}}`)
	f.Add(`{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}}`)
	f.Add(`{"type":"system","subtype":"api_retry","error_status":529,"error":{"x":1}}`)
	f.Add(`not json`)
	f.Fuzz(func(t *testing.T, text string) {
		l, err := decodeLine(text)
		if err != nil {
			return
		}
		if l.Message != nil {
			for _, b := range l.Message.Content {
				_ = toolCall(b)
			}
		}
		if l.Request != nil {
			_ = describeTool(l.Request)
		}
		_ = errorText(l.Error) + errorText(l.ErrorStatus)
		_, _ = json.Marshal(l)
	})
}
