package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tthost/tthost/plugins/internal/approval"
	"github.com/tthost/tthost/plugins/internal/jsonrpc"
	"github.com/tthost/tthost/sdk"
)

// The agent's requests. An agent waits for the answer to each, and its
// prompt with it, so every request is answered, from a goroutine of its
// own (the reader never blocks on a write): session/request_permission by
// the session's policy (option permission), anything else (fs/*,
// terminal/*, elicitation, methods of later versions) at once with
// JSON-RPC error -32601, since tthost advertises none of them. Each is
// reported as an Approval event before the answer is sent, so the event
// precedes whatever the answer causes.

// Decision words, the Codex backend's.
const (
	wordApproved           = "approved"
	wordApprovedForSession = "approved_for_session"
	wordDenied             = "denied"
	wordCancelled          = "abort"
)

// decider chooses among the options the agent offers; it must return when
// ctx ends, and the session then sends the safe answer (a rejection).
type decider func(ctx context.Context, r permissionRequest) (permissionDecision, error)

// permissionDecision is an answer: the option selected, or none
// (cancelled).
type permissionDecision struct {
	optionID string // "" answers {outcome: cancelled}
	word     string
}

// policy is the default decider: the option permission, at once.
func (s *session) policy(_ context.Context, r permissionRequest) (permissionDecision, error) {
	var prefer []string
	switch s.cfg.permission {
	case permAllow:
		prefer = []string{"allow_once", "allow_always"}
	case permAllowAlways:
		prefer = []string{"allow_always", "allow_once"}
	default:
		return safeDecision(r), nil
	}
	if d, ok := pick(r, prefer); ok {
		return d, nil
	}
	return safeDecision(r), nil
}

// safeDecision rejects: reject_once, else reject_always, else cancelled
// (an agent that offers no rejection still gets no permission).
func safeDecision(r permissionRequest) permissionDecision {
	if d, ok := pick(r, []string{"reject_once", "reject_always"}); ok {
		return d
	}
	return permissionDecision{word: wordCancelled}
}

// pick selects the first offered option of the first kind in prefer.
func pick(r permissionRequest, prefer []string) (permissionDecision, bool) {
	for _, kind := range prefer {
		for _, o := range r.Options {
			if o.Kind == kind && o.OptionID != "" {
				word := wordDenied
				switch kind {
				case "allow_once":
					word = wordApproved
				case "allow_always":
					word = wordApprovedForSession
				}
				return permissionDecision{optionID: o.OptionID, word: word}, true
			}
		}
	}
	return permissionDecision{}, false
}

// request is the wire's agent-request hook (on the reader goroutine).
func (s *session) request(a *agentProc, id json.RawMessage, method string, params json.RawMessage) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if method == "session/request_permission" {
			s.askPermission(a, id, params)
			return
		}
		s.reportApproval(nil, sdk.Approval{RequestID: jsonrpc.IDString(id), Kind: method, Decision: "unsupported",
			Description: "a request tthost does not serve (its client capabilities advertise no file system, terminal or elicitation)"})
		msg := fmt.Sprintf("tthost does not support %s (it advertises no such client capability; the agent runs unattended)", method)
		if err := a.rpc.ReplyError(id, jsonrpc.CodeMethodNotFound, msg); err != nil {
			s.log.Warn("could not answer an ACP agent request", "method", method, "error", err)
		}
	}()
}

// askPermission answers session/request_permission: by the policy, the
// safe rejection when no decision comes in time, or cancelled when the
// turn is cancelled (or restarted) meanwhile.
func (s *session) askPermission(a *agentProc, id json.RawMessage, params json.RawMessage) {
	key := jsonrpc.IDString(id)
	r, err := decodePermissionRequest(params)
	approval := sdk.Approval{RequestID: key, Kind: "permission", Description: "a tool call"}
	if err == nil {
		approval.Kind = "permission:" + toolKind(r.ToolCall.Kind)
		approval.Description = firstOf(r.ToolCall.Title, r.ToolCall.ToolCallID, "a tool call")
	}

	s.mu.Lock()
	t := s.running
	ctx, cancel := context.WithTimeout(s.Context(), s.cfg.approvalTimeout)
	defer cancel()
	cancelled := t == nil || t.cancel || t.stalled || t.restart
	if !cancelled {
		t.requests[key] = cancel
	}
	s.mu.Unlock()

	var d permissionDecision
	switch {
	case err != nil:
		d = permissionDecision{word: wordCancelled}
	case cancelled:
		d = permissionDecision{word: wordCancelled}
	default:
		var derr error
		d, derr = s.decide(ctx, r)
		s.mu.Lock()
		_, mine := t.requests[key]
		delete(t.requests, key)
		interrupted := !mine // cancelRequestsLocked took it: the prompt is being cancelled
		if t.ended && !interrupted {
			interrupted = true
		}
		s.mu.Unlock()
		switch {
		case interrupted:
			d = permissionDecision{word: wordCancelled}
		case derr != nil || ctx.Err() != nil:
			d = safeDecision(r)
			approval.TimedOut = true
		}
	}
	approval.Decision = d.word
	s.reportApproval(t, approval)
	outcome := map[string]any{"outcome": "cancelled"}
	if d.optionID != "" {
		outcome = map[string]any{"outcome": "selected", "optionId": d.optionID}
	}
	if err := a.rpc.Reply(id, map[string]any{"outcome": outcome}); err != nil {
		s.log.Warn("could not answer an ACP permission request", "error", err)
	}
	s.touch()
}

// reportApproval emits the Approval event on t while it runs (else as a
// session event: a turn already reported completed takes no more events).
func (s *session) reportApproval(t *turn, a sdk.Approval) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t == nil {
		t = s.running
	}
	if t != nil && !t.ended {
		approval.OnTurn(t.pt, a)
		return
	}
	s.Emit(sdk.ApprovalEvent("", a))
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
