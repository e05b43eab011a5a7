package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tthost/tthost/plugins/internal/approval"
	"github.com/tthost/tthost/sdk"
)

// Claude's own requests. With --permission-prompt-tool stdio, claude asks
// before a tool call that needs permission (can_use_tool) and waits for
// the answer with no timeout, so every request is answered: a permission
// by the session's policy, anything else with an error response. Each is
// answered from a goroutine of its own, so a slow decision never holds up
// the reader, and each permission is reported as an Approval event before
// the answer is sent, so the event precedes whatever the answer causes.

// approvalRequest is what a decider decides on.
type approvalRequest struct {
	tool  string
	input json.RawMessage
}

// decider returns true to allow. It must return when ctx ends; the
// session then denies, and the Approval event says timed_out.
type decider func(ctx context.Context, r approvalRequest) (bool, error)

// policy is the default decider: option tool_approval, at once.
func (s *session) policy(context.Context, approvalRequest) (bool, error) {
	return s.cfg.toolApproval == "allow", nil
}

// onControlRequestLocked answers a request of claude's (on the reader).
func (s *session) onControlRequestLocked(l line) {
	id, req := l.RequestID, l.Request
	if req == nil || req.Subtype != "can_use_tool" {
		what := "a request without a subtype"
		if req != nil {
			what = req.Subtype
		}
		s.Emit(sdk.ApprovalEvent("", sdk.Approval{RequestID: id, Kind: what, Decision: "unsupported",
			Description: "a request tthost does not answer"}))
		s.answerLater(controlErrorLine(id, fmt.Sprintf("tthost does not support %s (the agent runs unattended)", what)))
		return
	}
	ctx, cancel := context.WithTimeout(s.stopCtx, s.cfg.approvalTimeout)
	s.asks[id] = cancel
	t := s.runningLocked() // nil: the approval is the session's
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer cancel()
		allow, err := s.decide(ctx, approvalRequest{tool: req.ToolName, input: req.Input})
		a := sdk.Approval{RequestID: id, Kind: "tool", Description: describeTool(req), Decision: "denied"}
		if err != nil {
			allow, a.TimedOut = false, true
		}
		var answer any = map[string]any{"behavior": "deny", "message": "denied by tthost's approval policy (tool_approval)"}
		if a.TimedOut {
			answer = map[string]any{"behavior": "deny", "message": "no approval decision in time; denied"}
		}
		if allow {
			a.Decision = "approved"
			input := req.Input
			if len(input) == 0 {
				input = json.RawMessage(`{}`)
			}
			answer = map[string]any{"behavior": "allow", "updatedInput": input}
		}
		s.mu.Lock()
		delete(s.asks, id)
		if t != nil && s.cur == t && !t.ended {
			approval.OnTurn(t.pt, a)
		} else {
			s.Emit(sdk.ApprovalEvent("", a))
		}
		s.mu.Unlock()
		if err := s.write(controlSuccessLine(id, answer)); err != nil {
			s.log.Warn("could not answer claude's permission request", "tool", req.ToolName, "error", err)
		}
	}()
}

// answerLater writes a line from a goroutine: the reader never writes.
func (s *session) answerLater(b []byte) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.write(b); err != nil {
			s.log.Warn("could not answer claude", "error", err)
		}
	}()
}

// describeTool says what a permission request is for: the tool and its
// command or path.
func describeTool(r *controlRequest) string {
	call := toolCall(block{Type: "tool_use", Name: r.ToolName, Input: r.Input})
	if call.Name != "" && call.Name != r.ToolName {
		return r.ToolName + ": " + call.Name
	}
	if len(r.Input) > 0 {
		return r.ToolName + " " + compactJSON(r.Input, 200)
	}
	return r.ToolName
}
