package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tthost/tthost/plugins/internal/approval"
	"github.com/tthost/tthost/plugins/internal/jsonrpc"
	"github.com/tthost/tthost/sdk"
)

// Server requests. Codex waits for an answer to each one with no timeout,
// and a turn blocks until it gets it, so every request is answered: an
// approval by the session's policy, anything else with a JSON-RPC error
// (Tinytown took them for responses and never answered:
// docs/compatibility.md#d12). Each
// is answered from a goroutine of its own, so a slow decision never holds
// up the reader, and each is reported as an Approval event before the
// answer is sent, so the event precedes whatever the answer causes.

// approvalKinds maps the requests answered by policy to the contract's
// approval kinds.
var approvalKinds = map[string]string{
	"item/commandExecution/requestApproval": "command",
	"item/fileChange/requestApproval":       "file_change",
	"item/permissions/requestApproval":      "permissions",
	"mcpServer/elicitation/request":         "mcp_elicitation",
}

// reviewWords are the contract's words for codex's review decisions.
var reviewWords = map[string]string{
	"accept":           "approved",
	"acceptForSession": "approved_for_session",
	"decline":          "denied",
	"cancel":           "abort",
}

// approvalRequest is what a decider decides on.
type approvalRequest struct {
	method string
	kind   string // a value of approvalKinds
	params json.RawMessage
}

// decision is an answer to a server request.
type decision struct {
	result any    // the JSON-RPC result sent to codex
	word   string // the contract's word for it: approved, denied, ...
}

// decider produces a decision. It must return when ctx ends; the session
// then sends the safe answer.
type decider func(ctx context.Context, r approvalRequest) (decision, error)

// policy is the default decider: the session's options, at once.
func (s *session) policy(_ context.Context, r approvalRequest) (decision, error) {
	switch r.kind {
	case "command":
		return review(s.cfg.commandDecision), nil
	case "file_change":
		return review(s.cfg.fileDecision), nil
	case "permissions":
		if s.cfg.permissions == "grant" {
			var p struct {
				Permissions json.RawMessage `json:"permissions"`
			}
			_ = json.Unmarshal(r.params, &p)
			granted := any(map[string]any{})
			if jsonrpc.Present(p.Permissions) {
				granted = p.Permissions // everything asked, for this turn only
			}
			return decision{result: map[string]any{"permissions": granted, "scope": "turn"}, word: "approved"}, nil
		}
	}
	return safeDecision(r.kind), nil
}

func review(d string) decision {
	return decision{result: map[string]any{"decision": d}, word: reviewWords[d]}
}

// safeDecision refuses: the answer when no decision came in time.
func safeDecision(kind string) decision {
	switch kind {
	case "permissions":
		return decision{result: map[string]any{"permissions": map[string]any{}, "scope": "turn"}, word: "denied"}
	case "mcp_elicitation":
		return decision{result: map[string]any{"action": "decline", "content": nil}, word: "denied"}
	}
	return review("decline")
}

// request is the wire's server-request hook (on the reader goroutine).
func (s *session) Request(id json.RawMessage, method string, params json.RawMessage) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.answer(id, method, params)
	}()
}

func (s *session) answer(id json.RawMessage, method string, params json.RawMessage) {
	var p struct {
		TurnID      string          `json:"turnId"`
		ItemID      string          `json:"itemId"`
		Command     string          `json:"command"`
		Reason      string          `json:"reason"`
		ServerName  string          `json:"serverName"`
		Message     string          `json:"message"`
		Permissions json.RawMessage `json:"permissions"`
	}
	// Best effort: a request is answered whatever its params hold.
	_ = json.Unmarshal(params, &p)
	a := sdk.Approval{RequestID: jsonrpc.IDString(id)}
	kind, known := approvalKinds[method]
	if !known {
		a.Kind, a.Decision, a.Description = method, "unsupported", "a request tthost does not answer"
		s.reportApproval(p.TurnID, a)
		msg := fmt.Sprintf("tthost does not support %s (the agent runs unattended)", method)
		if err := s.rpc.ReplyError(id, -32601, msg); err != nil {
			s.log.Warn("could not answer a codex request", "method", method, "error", err)
		}
		return
	}

	ctx, cancel := context.WithTimeout(s.life, s.cfg.approvalTimeout)
	d, err := s.decide(ctx, approvalRequest{method: method, kind: kind, params: params})
	cancel()
	if err != nil {
		d, a.TimedOut = safeDecision(kind), true
	}
	a.Kind, a.Decision = kind, d.word
	switch kind {
	case "command":
		a.Description = firstOf(p.Command, p.Reason, "a command")
	case "file_change":
		s.mu.Lock()
		if t := s.turnLocked(p.TurnID); t != nil {
			a.Description = strings.Join(t.files[p.ItemID], ", ")
		}
		s.mu.Unlock()
		a.Description = firstOf(a.Description, p.Reason, "a file change")
	case "permissions":
		a.Description = firstOf(p.Reason, "extra permissions") + ": " + string(p.Permissions)
	case "mcp_elicitation":
		a.Description = firstOf(p.ServerName, "an MCP server") + ": " + p.Message
	}
	s.reportApproval(p.TurnID, a)
	if err := s.rpc.Reply(id, d.result); err != nil {
		s.log.Warn("could not answer a codex approval request", "method", method, "error", err)
	}
}

// reportApproval emits the Approval event, on the turn it belongs to while
// that turn runs (else as a session event: a turn already reported
// completed takes no more events).
func (s *session) reportApproval(turnID string, a sdk.Approval) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.turnLocked(turnID); t != nil {
		approval.OnTurn(t.pt, a)
		return
	}
	s.Emit(sdk.ApprovalEvent("", a))
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
