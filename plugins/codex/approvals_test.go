package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// answer decodes the fake's log entry of our answer to a server request.
func answer(t *testing.T, a received) map[string]any {
	t.Helper()
	var m map[string]any
	raw := a.Result
	if raw == nil {
		raw = a.Error
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("answer %+v: %v", a, err)
	}
	return m
}

func TestCommandApprovalsAreAnsweredByPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy     string
		word       string
		itemStatus string
		turn       sdk.TurnStatus
	}{
		{"accept", "approved", "completed", sdk.StatusCompleted},
		{"acceptForSession", "approved_for_session", "completed", sdk.StatusCompleted},
		{"decline", "denied", "declined", sdk.StatusCompleted},
		{"cancel", "abort", "declined", sdk.StatusInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec, f := open(t, procs, openOpts{options: map[string]string{
				optApprovalPolicy: "untrusted", optCommandApproval: tt.policy,
			}})
			id, c, evs := runTurn(t, s, rec, "APPROVAL=1")
			if c.Status != tt.turn {
				t.Errorf("turn = %+v, want %s", c, tt.turn)
			}
			approvals := sdktest.OfKind(evs, sdk.EventApproval, id)
			if len(approvals) != 1 {
				t.Fatalf("approvals:\n%s", sdktest.Dump(evs))
			}
			want := sdk.Approval{RequestID: "0", Kind: "command", Description: "touch x", Decision: tt.word}
			if a := *approvals[0].Approval; a != want {
				t.Errorf("Approval = %+v, want %+v", a, want)
			}
			tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
			if len(tools) != 1 || tools[0].Tool.Status != tt.itemStatus || tools[0].Tool.Name != "touch x" {
				t.Errorf("tool calls, want `touch x` %s:\n%s", tt.itemStatus, sdktest.Dump(tools))
			}
			answers := f.answers(t)
			if len(answers) != 1 || string(answers[0].ID) != "0" || answer(t, answers[0])["decision"] != tt.policy {
				t.Errorf("the fake got the answers %+v, want decision %s for request 0", answers, tt.policy)
			}
		})
	}
}

func TestFileChangeAndPermissionApprovals(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{options: map[string]string{
		optApprovalPolicy: "untrusted", optFileChangeApproval: "decline", optPermissionsApproval: "grant",
	}})
	id, c, evs := runTurn(t, s, rec, "FILE_APPROVAL=1 PERMISSIONS=1")
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %+v", c)
	}
	approvals := sdktest.OfKind(evs, sdk.EventApproval, id)
	if len(approvals) != 2 {
		t.Fatalf("approvals:\n%s", sdktest.Dump(evs))
	}
	if a := approvals[0].Approval; a.Kind != "file_change" || a.Description != "x.txt" || a.Decision != "denied" {
		t.Errorf("file change approval = %+v, want x.txt denied", *a)
	}
	if a := approvals[1].Approval; a.Kind != "permissions" || a.Decision != "approved" || !strings.Contains(a.Description, "needs the network") {
		t.Errorf("permissions approval = %+v, want approved", *a)
	}
	tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(tools) != 1 || tools[0].Tool.Kind != "file_change" || tools[0].Tool.Name != "x.txt" || tools[0].Tool.Status != "declined" {
		t.Errorf("tool calls:\n%s", sdktest.Dump(tools))
	}
	answers := f.answers(t)
	if len(answers) != 2 {
		t.Fatalf("answers = %+v", answers)
	}
	if got := answer(t, answers[0])["decision"]; got != "decline" {
		t.Errorf("file change answer = %v, want decline", got)
	}
	perm := answer(t, answers[1])
	granted, _ := json.Marshal(perm["permissions"])
	if perm["scope"] != "turn" || string(granted) != `{"fileSystem":null,"network":{"enabled":true}}` {
		t.Errorf("permissions answer = %v, want what was asked, for the turn", perm)
	}
}

func TestAnApprovalWithoutADecisionInTimeIsDeclined(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	// A decider that never decides: the approval timeout must answer.
	stuck := func(ctx context.Context, _ approvalRequest) (decision, error) {
		<-ctx.Done()
		return decision{}, ctx.Err()
	}
	s, rec, f := open(t, procs, openOpts{
		options: map[string]string{optApprovalPolicy: "untrusted", optApprovalTimeout: "200"},
		tweak:   func(s *session) { s.decide = stuck },
	})
	id, c, evs := runTurn(t, s, rec, "APPROVAL=1")
	approvals := sdktest.OfKind(evs, sdk.EventApproval, id)
	if len(approvals) != 1 || !approvals[0].Approval.TimedOut || approvals[0].Approval.Decision != "denied" {
		t.Fatalf("approvals, want one timed out and denied:\n%s", sdktest.Dump(evs))
	}
	if got := answer(t, f.answers(t)[0])["decision"]; got != "decline" || c.Status != sdk.StatusCompleted {
		t.Errorf("answer %v, turn %+v; want decline and the turn going on", got, c)
	}
}

func TestAnUnsupportedServerRequestGetsAnError(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	id, c, evs := runTurn(t, s, rec, "ODD_REQUEST=1")
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %+v", c)
	}
	answers := f.answers(t)
	if len(answers) != 1 || answers[0].Error == nil || answers[0].Result != nil {
		t.Fatalf("answers = %+v, want one JSON-RPC error", answers)
	}
	if msg := answer(t, answers[0])["message"]; !strings.Contains(msg.(string), "item/tool/requestUserInput") {
		t.Errorf("error message %q does not name the method", msg)
	}
	approvals := sdktest.OfKind(evs, sdk.EventApproval, id)
	if len(approvals) != 1 || approvals[0].Approval.Kind != "item/tool/requestUserInput" || approvals[0].Approval.Decision != "unsupported" {
		t.Errorf("approvals:\n%s", sdktest.Dump(evs))
	}
}
