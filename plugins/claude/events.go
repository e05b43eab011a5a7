package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tthost/tthost/sdk"
)

// Claude's output lines become events here, on the reader goroutine and
// in the order claude printed them.

// handleLine handles one line of the claude of generation gen.
func (s *session) handleLine(gen int, text string) {
	if strings.TrimSpace(text) == "" {
		return
	}
	l, err := decodeLine(text)
	if err != nil {
		s.invalid(gen, text, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return // a process being replaced or given up
	}
	s.activityLocked()
	switch l.Type {
	case "system":
		s.onSystemLocked(l)
	case "stream_event":
		s.onStreamEventLocked(l)
	case "assistant":
		s.onAssistantLocked(l)
	case "user":
		s.onUserLocked(l)
	case "result":
		s.onResultLocked(l)
	case "control_request":
		s.onControlRequestLocked(l)
	case "control_response":
		if l.Response != nil {
			if pc, ok := s.pending[l.Response.RequestID]; ok {
				pc.ch <- controlResult{resp: l.Response}
				delete(s.pending, l.Response.RequestID)
			}
		}
	case "control_cancel_request":
		if cancel, ok := s.asks[l.RequestID]; ok {
			cancel()
		}
	}
}

// runningLocked is the turn claude's output belongs to, or nil (no turn,
// or a CLI turn that answers a line of a turn already ended).
func (s *session) runningLocked() *turn {
	if t := s.cur; t != nil && !t.ended && !s.stale {
		return t
	}
	return nil
}

func (s *session) onSystemLocked(l line) {
	switch l.Subtype {
	case "init":
		s.noteSessionIDLocked(l.SessionID)
	case "api_retry":
		msg := fmt.Sprintf("claude's API request failed (status %s, %s); retry %d of %d in %d ms",
			orNone(errorText(l.ErrorStatus)), orNone(errorText(l.Error)), l.Attempt, l.MaxRetries, l.RetryDelayMS)
		if t := s.runningLocked(); t != nil {
			t.pt.Transcript().Note("%s", msg)
			t.pt.Emit(sdk.ErrorEvent("", "api_retry", msg, false))
		} else {
			s.Emit(sdk.ErrorEvent("", "api_retry", msg, false))
		}
	}
}

// noteSessionIDLocked follows claude's session id. Claude 2.1.330 keeps
// the id it was given, but older releases minted a new one on resume: the
// new id is the one to resume from now on, and an Error says so, since the
// host saved the old one from SessionReady.
func (s *session) noteSessionIDLocked(id string) {
	if id == "" || id == s.sessionID {
		return
	}
	old := s.sessionID
	s.sessionID = id
	s.log.Warn("claude changed its session id", "from", old, "to", id)
	s.Emit(sdk.ErrorEvent("", "session_id_changed", fmt.Sprintf(
		"claude reports session id %s instead of %s; resume the session with %s from now on", id, old, id), false))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (s *session) onStreamEventLocked(l line) {
	t := s.runningLocked()
	if t == nil || l.ParentToolUseID != nil || l.Event == nil {
		return
	}
	switch ev := l.Event; ev.Type {
	case "message_start":
		if ev.Message != nil {
			t.streamMsg = ev.Message.ID
		}
	case "content_block_delta":
		if ev.Delta != nil && ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
			t.streamed[t.streamMsg] = true
			t.pt.Output(ev.Delta.Text)
		}
	}
}

func (s *session) onAssistantLocked(l line) {
	t := s.runningLocked()
	if t == nil || l.ParentToolUseID != nil || l.Message == nil {
		return
	}
	for _, b := range l.Message.Content {
		switch b.Type {
		case "text":
			if !t.streamed[l.Message.ID] {
				t.pt.Output(b.Text)
			}
			t.pt.Transcript().EndLine()
		case "tool_use":
			call := toolCall(b)
			t.tools[b.ID] = call
			t.pt.Emit(sdk.ToolCallEvent("", call))
		}
	}
}

// toolCall describes a tool_use block as the contract's ToolCall.
func toolCall(b block) sdk.ToolCall {
	var in struct {
		Command  string `json:"command"`
		FilePath string `json:"file_path"`
		Path     string `json:"path"`
		Pattern  string `json:"pattern"`
		URL      string `json:"url"`
	}
	_ = json.Unmarshal(b.Input, &in)
	call := sdk.ToolCall{ID: b.ID, Kind: "tool", Name: b.Name, Status: "in_progress"}
	switch b.Name {
	case "Bash":
		call.Kind, call.Name = "command", in.Command
	case "Write", "Edit", "MultiEdit", "NotebookEdit":
		call.Kind, call.Name = "file_change", in.FilePath
	case "Read":
		call.Kind, call.Name = "read", in.FilePath
	default:
		if strings.HasPrefix(b.Name, "mcp__") {
			call.Kind, call.Name = "mcp", strings.Replace(strings.TrimPrefix(b.Name, "mcp__"), "__", ":", 1)
		} else if detail := firstOf(in.Pattern, in.Path, in.URL); detail != "" {
			call.Name = b.Name + " " + detail
		}
	}
	if call.Name == "" {
		call.Name = b.Name
	}
	return call
}

func (s *session) onUserLocked(l line) {
	if l.IsReplay {
		s.onReplayLocked(l)
		return
	}
	t := s.runningLocked()
	if t == nil || l.ParentToolUseID != nil || l.Message == nil {
		return
	}
	for _, b := range l.Message.Content {
		if b.Type != "tool_result" {
			continue
		}
		call, ok := t.tools[b.ToolUseID]
		if !ok {
			call = sdk.ToolCall{ID: b.ToolUseID, Kind: "tool", Name: "tool"}
		}
		delete(t.tools, b.ToolUseID)
		call.Status = "completed"
		if b.IsError {
			call.Status = "failed"
		}
		t.pt.Transcript().Note("tool %s `%s`: %s", call.Kind, call.Name, call.Status)
		t.pt.Emit(sdk.ToolCallEvent("", call))
	}
}

// onReplayLocked is claude taking a user line of ours (it replays each,
// with the uuid we gave it, when it reads it into a CLI turn). The first
// line a CLI turn takes is the one it runs for; a steered line taken after
// it was folded into that CLI turn; a steered line taken first was queued
// by claude and runs as a CLI turn of its own: steer_queued.
func (s *session) onReplayLocked(l line) {
	rec, ok := s.lines[l.UUID]
	if !ok {
		return // a line of ours claude already answered, or not ours
	}
	first := len(s.taken) == 0
	s.taken = append(s.taken, rec)
	t := rec.t
	if t != s.cur || t.ended {
		if first {
			s.stale = true // its output belongs to an ended turn
		}
		return
	}
	if !rec.steer {
		return
	}
	if first {
		msg := "claude did not take the steered text into the running turn (no tool call gave it a chance): it runs it as a follow-up turn, and the turn ends when that has been answered"
		t.pt.Transcript().Note("%s", msg)
		t.pt.Emit(sdk.ErrorEvent("", "steer_queued", msg, false))
	} else {
		t.pt.Transcript().Note("claude took the steered text into the running turn")
	}
}

// onResultLocked is the end of a CLI turn: it answers the lines that CLI
// turn took (at least one).
func (s *session) onResultLocked(l line) {
	s.noteSessionIDLocked(l.SessionID)
	costDelta := l.TotalCostUSD - s.cost // total_cost_usd is the process's running total
	if costDelta < 0 {
		costDelta = l.TotalCostUSD
	}
	s.cost = l.TotalCostUSD
	taken, stale := s.taken, s.stale
	s.taken, s.stale = nil, false
	for _, rec := range taken {
		for id, r := range s.lines {
			if r == rec {
				delete(s.lines, id)
			}
		}
	}
	t := s.cur
	if t == nil || t.ended || stale {
		if t == nil && l.IsError && len(l.Errors) > 0 {
			s.startErr = strings.Join(l.Errors, "; ")
		}
		s.log.Debug("a result for no running turn", "subtype", l.Subtype)
		return
	}
	t.results++
	if u := l.Usage; u != nil {
		in := u.InputTokens + u.CacheReadTokens + u.CacheCreationTokens
		t.usage.InputTokens += in
		t.usage.CachedInputTokens += u.CacheReadTokens
		t.usage.OutputTokens += u.OutputTokens
		if d := u.OutputTokensDetails; d != nil {
			t.usage.ReasoningOutputTokens += d.ThinkingTokens
		}
		t.usage.TotalTokens += in + u.OutputTokens
		t.pt.Emit(sdk.UsageEvent("", t.usage))
	}
	t.cost += costDelta
	t.pt.Transcript().Note("claude turn %s: cost $%.6f (this turn $%.6f)", l.Subtype, costDelta, t.cost)

	c := sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: firstLine(l.Result)}
	if l.IsError || l.Subtype != "success" {
		why := strings.Join(l.Errors, "; ")
		if why == "" {
			why = firstOf(l.Result, "claude ended the turn with "+l.Subtype)
		}
		c = sdk.TurnCompleted{Status: sdk.StatusFailed, Error: why}
	}
	switch {
	case t.stalled:
		s.endStalledLocked(t, s.stallMsg()) // claude answered the interrupt with a result
	case t.cancelled:
		s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "interrupted"}, true)
	default:
		n := 0
		for _, rec := range taken {
			if rec.t == t {
				n++
			}
		}
		n = max(n, 1) // a result answers at least the line that started it
		if c.Status == sdk.StatusFailed {
			t.pt.Emit(sdk.ErrorEvent("", "claude_error", c.Error, false))
		}
		for i := 0; i < n && t.answered < t.given; i++ {
			t.answered++
			if t.answered == t.given {
				s.endLocked(t, c, false)
				t.pt.Answered(c)
				break
			}
			t.pt.Answered(c)
		}
	}
}

// invalid reports output that is not stream-json. It is never fatal: one
// bad line must not end an agent's session.
func (s *session) invalid(gen int, text string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	s.activityLocked()
	ev := sdk.ErrorEvent("", "invalid_output", fmt.Sprintf("claude wrote a line that is not stream-json (%v): %.200q", err, text), false)
	if t := s.runningLocked(); t != nil {
		t.pt.Emit(ev)
		return
	}
	s.Emit(ev)
}

// idle flushes the running turn's transcript: the reader has caught up.
func (s *session) idle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.cur; t != nil {
		_ = t.pt.Transcript().Flush()
	}
}

// firstLine is the first non-empty line of s, trimmed.
func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
