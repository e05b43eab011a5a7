package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tthost/tthost/sdk"
)

// The session as the wire's handler: codex's notifications become events,
// on the reader goroutine and in wire order. Every per-turn notification is
// matched to our turn by its turnId, never by order (Tinytown matched
// completions first-in-first-out: docs/compatibility.md#d7); anything for
// another turn (a sub-agent's, an orphan's) is not ours to report.

// tokenBreakdown is codex's TokenUsageBreakdown.
type tokenBreakdown struct {
	TotalTokens           int64 `json:"totalTokens"`
	InputTokens           int64 `json:"inputTokens"`
	CachedInputTokens     int64 `json:"cachedInputTokens"`
	OutputTokens          int64 `json:"outputTokens"`
	ReasoningOutputTokens int64 `json:"reasoningOutputTokens"`
}

func (a tokenBreakdown) minus(b tokenBreakdown) tokenBreakdown {
	return tokenBreakdown{
		TotalTokens:           a.TotalTokens - b.TotalTokens,
		InputTokens:           a.InputTokens - b.InputTokens,
		CachedInputTokens:     a.CachedInputTokens - b.CachedInputTokens,
		OutputTokens:          a.OutputTokens - b.OutputTokens,
		ReasoningOutputTokens: a.ReasoningOutputTokens - b.ReasoningOutputTokens,
	}
}

// item is the part of a ThreadItem this backend reports.
type item struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Text     string          `json:"text"`
	Command  json.RawMessage `json:"command"` // a string in v2; tolerate an argv array
	Status   string          `json:"status"`
	ExitCode *int            `json:"exitCode"`
	Changes  []struct {
		Path string `json:"path"`
	} `json:"changes"`
	Server string `json:"server"`
	Tool   string `json:"tool"`
}

func (s *session) Notification(method string, params json.RawMessage) {
	var err error
	switch method {
	case "item/agentMessage/delta":
		err = s.onDelta(params)
	case "item/started":
		err = s.onItemStarted(params)
	case "item/completed":
		err = s.onItemCompleted(params)
	case "turn/started":
		err = s.onTurnStarted(params)
	case "turn/completed":
		err = s.onTurnCompleted(params)
	case "thread/tokenUsage/updated":
		err = s.onUsage(params)
	case "error":
		err = s.onError(params)
	}
	if err != nil {
		s.Invalid([]byte(fmt.Sprintf(`{"method":%q,"params":%s}`, method, params)), fmt.Errorf("%s: %v", method, err))
	}
}

// turnLocked returns the running turn if id names it.
func (s *session) turnLocked(id string) *turn {
	if t := s.running; t != nil && id != "" && t.id == id {
		return t
	}
	return nil
}

func (s *session) onDelta(params json.RawMessage) error {
	var p struct {
		TurnID string `json:"turnId"`
		Delta  string `json:"delta"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.turnLocked(p.TurnID); t != nil && p.Delta != "" {
		t.pt.Output(p.Delta) // a delta, and the transcript
	}
	return nil
}

// onItemStarted remembers a file change's paths: codex's approval request
// for it names only the item.
func (s *session) onItemStarted(params json.RawMessage) error {
	turnID, it, err := decodeItemParams(params)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.turnLocked(turnID); t != nil && it.Type == "fileChange" {
		t.files[it.ID] = changedPaths(it)
	}
	return nil
}

func (s *session) onItemCompleted(params json.RawMessage) error {
	turnID, it, err := decodeItemParams(params)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.turnLocked(turnID)
	if t == nil {
		return nil
	}
	call := sdk.ToolCall{ID: it.ID, Status: toolStatus(it.Status), ExitCode: it.ExitCode}
	switch it.Type {
	case "agentMessage":
		t.lastText = it.Text
		t.pt.Transcript().EndLine()
		return nil
	case "commandExecution":
		call.Kind, call.Name = "command", commandLine(it.Command)
	case "fileChange":
		call.Kind, call.Name = "file_change", strings.Join(changedPaths(it), ", ")
		delete(t.files, it.ID)
	case "mcpToolCall":
		call.Kind, call.Name = "mcp", it.Server+":"+it.Tool
	default:
		return nil
	}
	outcome := call.Status
	if call.ExitCode != nil {
		outcome += fmt.Sprintf(", exit %d", *call.ExitCode)
	}
	t.pt.Transcript().Note("tool %s `%s`: %s", call.Kind, call.Name, outcome)
	t.pt.Emit(sdk.ToolCallEvent("", call))
	return nil
}

// onTurnStarted confirms a turn. A turn no Send is waiting for (its
// turn/start timed out and was reported failed) is interrupted: the host
// has put its input back, and codex must not work on it behind its back.
func (s *session) onTurnStarted(params json.RawMessage) error {
	var p struct {
		Turn struct {
			ID string `json:"id"`
		} `json:"turn"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return err
	}
	id := p.Turn.ID
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t := s.turnLocked(id); {
	case id == "":
	case t != nil:
		t.markActiveLocked()
	case s.starting != nil && s.starting.id == "":
		// turn/started overtook the answer to turn/start.
		s.bindLocked(s.starting, id)
		s.starting.markActiveLocked()
	case s.running == nil && !s.Closing():
		thread := s.threadID
		s.Emit(sdk.ErrorEvent("", "orphan_turn", fmt.Sprintf(
			"codex started turn %s that no input is waiting for (its turn/start had failed); interrupting it", id), false))
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			ctx, cancel := context.WithTimeout(s.life, interruptTimeout)
			defer cancel()
			if _, err := s.rpc.Call(ctx, "turn/interrupt", map[string]any{"threadId": thread, "turnId": id}, nil); err != nil {
				s.log.Warn("could not interrupt an orphan codex turn", "turn", id, "error", err)
			}
		}()
	}
	return nil
}

func (s *session) onTurnCompleted(params json.RawMessage) error {
	var p struct {
		Turn struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
			Items []json.RawMessage `json:"items"`
		} `json:"turn"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.turnLocked(p.Turn.ID)
	if t == nil {
		return nil
	}
	text := t.lastText
	for _, raw := range p.Turn.Items {
		// A completed turn's summary view holds its final message, in case
		// its item/completed was missed.
		if it, err := decodeItem(raw); text == "" && err == nil && it.Type == "agentMessage" {
			text = it.Text
		}
	}
	c := sdk.TurnCompleted{Summary: firstLine(text)}
	switch p.Turn.Status {
	case "completed":
		c.Status = sdk.StatusCompleted
	case "interrupted":
		c.Status = sdk.StatusInterrupted
	case "failed":
		c.Status, c.Error = sdk.StatusFailed, "codex reported the turn failed"
		if p.Turn.Error != nil && p.Turn.Error.Message != "" {
			c.Error = p.Turn.Error.Message
		}
	default:
		c.Status, c.Error = sdk.StatusFailed, fmt.Sprintf("codex ended the turn with status %q", p.Turn.Status)
	}
	switch {
	case c.Error != "":
		t.pt.Transcript().Note("turn %s: %s", c.Status, c.Error)
	default:
		t.pt.Transcript().Note("turn %s", c.Status)
	}
	s.running = nil
	close(t.ended)
	t.pt.Complete(c)
	return nil
}

// onUsage reports the turn's usage so far: the thread's running total less
// what it was when the turn started. When the total did not grow (a server
// that reports per-request totals, or counters reset by a compaction), the
// last request's usage is the best figure there is.
func (s *session) onUsage(params json.RawMessage) error {
	var p struct {
		ThreadID   string `json:"threadId"`
		TurnID     string `json:"turnId"`
		TokenUsage struct {
			Total tokenBreakdown `json:"total"`
			Last  tokenBreakdown `json:"last"`
		} `json:"tokenUsage"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.threadID != "" && p.ThreadID != "" && p.ThreadID != s.threadID {
		return nil // another thread's (a sub-agent's)
	}
	s.usage = p.TokenUsage.Total
	t := s.turnLocked(p.TurnID)
	if t == nil {
		return nil
	}
	u := p.TokenUsage.Total.minus(t.baseline)
	if u.TotalTokens <= 0 || u.InputTokens < 0 || u.CachedInputTokens < 0 || u.OutputTokens < 0 || u.ReasoningOutputTokens < 0 {
		u = p.TokenUsage.Last
	}
	t.pt.Emit(sdk.UsageEvent("", sdk.Usage{
		InputTokens:           u.InputTokens,
		CachedInputTokens:     u.CachedInputTokens,
		OutputTokens:          u.OutputTokens,
		ReasoningOutputTokens: u.ReasoningOutputTokens,
		TotalTokens:           u.TotalTokens,
	}))
	return nil
}

// onError reports codex's error notification. It is never fatal: with
// willRetry codex is only reconnecting, and otherwise the turn's own
// turn/completed (failed) follows.
func (s *session) onError(params json.RawMessage) error {
	var p struct {
		Error struct {
			Message        string          `json:"message"`
			CodexErrorInfo json.RawMessage `json:"codexErrorInfo"`
		} `json:"error"`
		WillRetry bool   `json:"willRetry"`
		TurnID    string `json:"turnId"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return err
	}
	code := "codex_error"
	switch info := p.Error.CodexErrorInfo; {
	case p.WillRetry:
		code = "retrying"
	case len(info) > 0 && info[0] == '"':
		_ = json.Unmarshal(info, &code)
	case len(info) > 0 && info[0] == '{':
		// A tagged object such as {"httpConnectionFailed":{...}}.
		var obj map[string]json.RawMessage
		if json.Unmarshal(info, &obj) == nil {
			for k := range obj {
				code = k
			}
		}
	}
	msg := p.Error.Message
	if msg == "" {
		msg = "codex reported an error without a message"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.turnLocked(p.TurnID); t != nil {
		t.pt.Transcript().Note("error (%s): %s", code, msg)
		t.pt.Emit(sdk.ErrorEvent("", code, msg, false))
	} else {
		s.Emit(sdk.ErrorEvent("", code, msg, false))
	}
	return nil
}

// invalid reports output that is not JSON-RPC. It is never fatal: one bad
// line (a stray print, a truncated write) must not end an agent's session.
func (s *session) Invalid(text []byte, err error) {
	s.Emit(sdk.ErrorEvent("", "invalid_output",
		fmt.Sprintf("codex app-server wrote output that is not usable JSON-RPC (%v): %.200q", err, text), false))
}

// idle flushes the running turn's transcript: the reader has caught up.
func (s *session) Idle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		_ = s.running.pt.Transcript().Flush()
	}
}

// decodeItemParams decodes item/started and item/completed params.
func decodeItemParams(params json.RawMessage) (turnID string, it item, err error) {
	var p struct {
		TurnID string          `json:"turnId"`
		Item   json.RawMessage `json:"item"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return "", item{}, err
	}
	it, err = decodeItem(p.Item)
	return p.TurnID, it, err
}

// decodeItem decodes a ThreadItem of a kind this backend reports; any other
// kind comes back with only its Type, so that fields this backend never
// reads cannot make a valid notification look invalid.
func decodeItem(raw json.RawMessage) (item, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return item{}, err
	}
	switch head.Type {
	case "agentMessage", "commandExecution", "fileChange", "mcpToolCall":
		var it item
		err := json.Unmarshal(raw, &it)
		return it, err
	}
	return item{Type: head.Type}, nil
}

func changedPaths(it item) []string {
	var paths []string
	for _, c := range it.Changes {
		paths = append(paths, c.Path)
	}
	return paths
}

// commandLine renders a command item's command: a string, or an argv list.
func commandLine(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var argv []string
	if json.Unmarshal(raw, &argv) == nil {
		return strings.Join(argv, " ")
	}
	return "command"
}

// toolStatus maps codex's item status to the contract's words.
func toolStatus(s string) string {
	if s == "inProgress" {
		return "in_progress"
	}
	return s
}

// firstLine is the first non-empty line of s, trimmed (Tinytown kept the
// first line even when it was empty: docs/compatibility.md#d17).
func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
