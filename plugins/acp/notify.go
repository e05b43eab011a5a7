package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
)

// wire is one agent generation's jsonrpc.Handler: what the agent sends,
// on its reader goroutine and in wire order. Lines of a generation that
// was replaced (killed after a stall) are ignored.
type wire struct {
	s *session
	a *agentProc
}

func (w wire) live() bool {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.agent == w.a && !w.a.replaced
}

func (w wire) Notification(method string, params json.RawMessage) {
	if !w.live() {
		return
	}
	switch method {
	case "session/update":
		if err := w.s.onUpdate(params); err != nil {
			w.s.invalid([]byte(fmt.Sprintf(`{"method":%q,"params":%s}`, method, params)), fmt.Errorf("%s: %v", method, err))
		}
	default:
		w.s.touch()
	}
}

func (w wire) Request(id json.RawMessage, method string, params json.RawMessage) {
	if !w.live() {
		return
	}
	w.s.touch()
	w.s.request(w.a, id, method, params)
}

func (w wire) Invalid(text []byte, err error) {
	if w.live() {
		w.s.invalid(text, err)
	}
}

func (w wire) Idle() { w.s.idle() }

// touch records that the agent is alive, for the stall watchdog.
func (s *session) touch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.running; t != nil {
		t.activity = time.Now()
	}
}

// onUpdate turns a session/update into the running turn's events. With no
// turn running an update is history (a session/load replays the whole
// conversation, and may go on after its answer) or chatter (available
// commands): it is dropped.
func (s *session) onUpdate(params json.RawMessage) error {
	u, err := decodeUpdate(params)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastUpdate = time.Now()
	t := s.running
	if t == nil {
		return err
	}
	t.activity = time.Now()
	if err != nil {
		return err
	}
	if u.sessionID != "" && u.sessionID != s.sessionID {
		return nil // another session's
	}
	switch u.kind {
	case "agent_message_chunk":
		s.flushThoughtLocked(t)
		if u.text != "" {
			t.msg.WriteString(u.text)
			t.pt.Output(u.text) // a delta, and the transcript
		}
	case "agent_thought_chunk":
		// Reasoning is not the answer: the transcript keeps it, the
		// events do not.
		t.thought.WriteString(u.text)
	case "tool_call", "tool_call_update":
		s.flushThoughtLocked(t)
		s.toolLocked(t, u)
	case "plan":
		s.flushThoughtLocked(t)
		var b strings.Builder
		for i, e := range u.plan {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "[%s] %s", e.Status, e.Content)
		}
		t.pt.Transcript().Note("plan: %s", b.String())
	}
	return nil
}

// toolLocked upserts a tool call by its id and reports it whenever its
// status changes (ACP's tool_call and tool_call_update are patches).
func (s *session) toolLocked(t *turn, u update) {
	st := t.tools[u.toolID]
	if st == nil {
		st = &toolState{}
		t.tools[u.toolID] = st
		if !u.hasStatus && u.kind == "tool_call" {
			u.status, u.hasStatus = "pending", true // ACP's default
		}
	}
	if u.title != "" {
		st.title = u.title
	}
	if u.toolKind != "" {
		st.kind = u.toolKind
	}
	if !u.hasStatus || u.status == st.emitted {
		return
	}
	st.emitted = u.status
	if t.msg.Len() > 0 {
		t.lastMsg = t.msg.String()
		t.msg.Reset()
		t.pt.Transcript().EndLine()
	}
	call := sdk.ToolCall{ID: u.toolID, Kind: toolKind(st.kind), Name: st.title, Status: u.status}
	t.pt.Transcript().Note("tool %s `%s`: %s", call.Kind, call.Name, call.Status)
	t.pt.Emit(sdk.ToolCallEvent("", call))
}

// flushThoughtLocked writes the agent's reasoning so far to the transcript.
func (s *session) flushThoughtLocked(t *turn) {
	if th := strings.TrimSpace(t.thought.String()); th != "" {
		t.pt.Transcript().Note("thinking: %s", th)
	}
	t.thought.Reset()
}

// invalid reports output that is not usable. It is never fatal: one bad
// line (a stray print, a truncated write) must not end an agent's session.
func (s *session) invalid(text []byte, err error) {
	s.Emit(sdk.ErrorEvent("", "invalid_output",
		fmt.Sprintf("the ACP agent wrote output that is not usable (%v): %.200q", err, text), false))
}

// idle flushes the running turn's transcript: the reader has caught up.
func (s *session) idle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.running; t != nil {
		_ = t.pt.Transcript().Flush()
	}
}
