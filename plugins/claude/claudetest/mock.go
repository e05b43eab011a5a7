package claudetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// MockAnthropic is an Anthropic Messages API server on 127.0.0.1 for
// Claude Code (or anything else that speaks the API, such as
// claude-code-acp) to talk to. It answers POST /v1/messages, streaming
// (Server-Sent Events) or not, from its Script; answers the other calls
// Claude Code makes (POST /v1/messages/count_tokens); records every
// request; and fails the test on any other path, and on any request a
// client tries to send elsewhere through the proxy guard (see Env).
type MockAnthropic struct {
	*mockrec.Server // URL, Close, Closing: the HTTP side on 127.0.0.1

	t      testing.TB
	script Script
	log    *mockrec.Log[Request]
}

// Script decides the reply to a request. It is called once per request,
// on the request's own goroutine (requests can overlap), and should return
// at once: to hold an answer open, use Reply.Interval or Reply.Hold.
type Script func(req Request) Reply

// Reply is what the mock answers one request with: an assistant message
// of text (streamed as Deltas, Interval apart), then an optional tool_use
// block. Status, when non-zero, replaces all of it with that HTTP error.
type Reply struct {
	// Text is the assistant's text; empty for none.
	Text string
	// Deltas are the pieces Text is streamed in; nil splits Text after
	// each space. When set, Text is ignored and the text is their
	// concatenation.
	Deltas []string
	// Interval is the pause between deltas. The answer stops as soon as
	// the client disconnects.
	Interval time.Duration
	// Hold, when not nil, keeps the stream open after the text until it
	// is closed (then the answer goes on), the client disconnects or the
	// mock is closed.
	Hold <-chan struct{}
	// ToolUse is a tool the model calls after its text.
	ToolUse *ToolUse
	// Status is an HTTP error status to answer with instead (e.g. 500,
	// 429, 529); ErrorType is the error's type in the body (default
	// "api_error").
	Status    int
	ErrorType string
}

// ToolUse is a tool call in a Reply.
type ToolUse struct {
	// Name is the tool, e.g. "Bash", "Read", "Write".
	Name string
	// Input is the JSON object of arguments, e.g. `{"command":"echo hi"}`.
	// It is streamed in two input_json_delta pieces.
	Input string
	// ID defaults to "toolu_mock_<request seq>".
	ID string
}

// Usage is the token usage the mock reported for a request.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// NewMockAnthropic starts a mock on 127.0.0.1 that answers with script
// (nil means DefaultScript) and closes it when the test ends.
func NewMockAnthropic(t testing.TB, script Script) *MockAnthropic {
	t.Helper()
	if script == nil {
		script = DefaultScript
	}
	m := &MockAnthropic{t: t, script: script, log: mockrec.NewLog[Request]()}
	m.Server = mockrec.StartServer(t, http.HandlerFunc(m.serveHTTP))
	return m
}

// Requests returns every /v1/messages request so far, in order.
func (m *MockAnthropic) Requests() []Request { return m.log.All() }

// TurnRequests returns the requests of the agent's conversation, leaving
// out side requests (IsSideRequest).
func (m *MockAnthropic) TurnRequests() []Request {
	var out []Request
	for _, r := range m.log.All() {
		if !r.IsSideRequest() {
			out = append(out, r)
		}
	}
	return out
}

// Other returns "METHOD /path" for each request the mock did not serve;
// each also failed the test.
func (m *MockAnthropic) Other() []string { return m.log.Other() }

// WaitRequest waits until a recorded request satisfies pred and returns
// the first that does. pred is evaluated again whenever a request arrives
// or an answer ends (its Outcome changes), so a test can wait for either.
func (m *MockAnthropic) WaitRequest(ctx context.Context, pred func(Request) bool) (Request, error) {
	return m.log.Wait(ctx, pred)
}

func (m *MockAnthropic) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if target, foreign := mockrec.Foreign(r, m.URL()); foreign {
		m.t.Errorf("claudetest: the client tried to reach %s %s outside the mock; the proxy guard refused it "+
			"(it must run offline: check the variables Env sets)", r.Method, target)
		http.Error(w, "claudetest: offline test, no outside connections", http.StatusForbidden)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
		m.serveMessages(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/count_tokens":
		body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"input_tokens":%d}`, len(body)/4+1)
	default:
		m.log.AddOther(r.Method + " " + r.URL.Path)
		m.t.Errorf("claudetest: the client asked the mock for %s %s, which it does not serve "+
			"(serve it in MockAnthropic if the client needs it)", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func (m *MockAnthropic) serveMessages(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{At: time.Now(), Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body, Outcome: OutcomeStreaming}
	perr := ParseRequest(body, &req)
	req.Seq = m.log.Add(func(seq int) Request { req.Seq = seq; return req })
	setOutcome := func(o Outcome) { m.log.Update(req.Seq, func(r *Request) { r.Outcome = o }) }
	if perr != nil {
		m.t.Errorf("claudetest: request %d: %v", req.Seq, perr)
		setOutcome(OutcomeHTTPError)
		writeError(w, http.StatusBadRequest, "invalid_request_error", perr.Error())
		return
	}
	reply, ok := mockrec.RunScript(m.t, "claudetest", req.Seq, m.script, req)
	if ok && reply.Status == 0 {
		u := usageOf(req, reply)
		m.log.Update(req.Seq, func(r *Request) { r.Usage = u })
	}
	if !ok || reply.Status != 0 {
		status, typ := reply.Status, reply.ErrorType
		if !ok {
			status = http.StatusInternalServerError
		}
		if typ == "" {
			typ = "api_error"
		}
		writeError(w, status, typ, fmt.Sprintf("claudetest: scripted HTTP %d", status))
		setOutcome(OutcomeHTTPError)
		return
	}
	if !req.Stream {
		writeJSON(w, message(req, reply, true))
		setOutcome(OutcomeCompleted)
		return
	}
	setOutcome(m.stream(r.Context(), w, req, reply))
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(v)
	_, _ = w.Write(b)
}

// usageOf is what the mock reports for a request: about a token per 4
// bytes of the request, and of the answer.
func usageOf(req Request, reply Reply) Usage {
	out := int64(len(replyText(reply))/4 + 1)
	if reply.ToolUse != nil {
		out += int64(len(reply.ToolUse.Input)/4 + 1)
	}
	return Usage{InputTokens: int64(len(req.Body)/4 + 1), OutputTokens: out}
}

func replyDeltas(reply Reply) []string {
	if reply.Deltas != nil {
		return reply.Deltas
	}
	if reply.Text == "" {
		return nil
	}
	return strings.SplitAfter(reply.Text, " ")
}

func replyText(reply Reply) string { return strings.Join(replyDeltas(reply), "") }

func toolID(req Request, tu *ToolUse) string {
	if tu.ID != "" {
		return tu.ID
	}
	return fmt.Sprintf("toolu_mock_%d", req.Seq)
}

// message is the whole answer as a Messages API message object.
func message(req Request, reply Reply, done bool) map[string]any {
	u := usageOf(req, reply)
	content := []any{}
	stop := any(nil)
	if done {
		if text := replyText(reply); text != "" {
			content = append(content, map[string]any{"type": "text", "text": text})
		}
		stop = "end_turn"
		if tu := reply.ToolUse; tu != nil {
			var input any = map[string]any{}
			_ = json.Unmarshal([]byte(tu.Input), &input)
			content = append(content, map[string]any{"type": "tool_use", "id": toolID(req, tu), "name": tu.Name, "input": input})
			stop = "tool_use"
		}
	}
	model := req.Model
	if model == "" {
		model = "mock-model"
	}
	outTokens := u.OutputTokens
	if !done {
		outTokens = 1
	}
	return map[string]any{
		"id": fmt.Sprintf("msg_mock_%d", req.Seq), "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": u.InputTokens, "output_tokens": outTokens,
			"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	}
}

// stream sends reply as the Messages API's Server-Sent Events.
func (m *MockAnthropic) stream(ctx context.Context, w http.ResponseWriter, req Request, reply Reply) Outcome {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(payload map[string]any) bool {
		b, err := json.Marshal(payload)
		if err != nil {
			panic(err) // only maps of strings, numbers and slices
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", payload["type"], b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	gone := func() Outcome {
		select {
		case <-m.Closing():
			return OutcomeClosed
		default:
			return OutcomeDisconnected
		}
	}
	// wait pauses for d, or until ch is closed when d is 0; false: the
	// client or the mock went away.
	wait := func(d time.Duration, ch <-chan struct{}) bool {
		var timeout <-chan time.Time
		if d > 0 {
			timer := time.NewTimer(d)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-timeout:
		case <-ch:
		case <-ctx.Done():
			return false
		case <-m.Closing():
			return false
		}
		return true
	}

	if !send(map[string]any{"type": "message_start", "message": message(req, reply, false)}) {
		return gone()
	}
	index := 0
	if deltas := replyDeltas(reply); len(deltas) > 0 {
		if !send(map[string]any{"type": "content_block_start", "index": index, "content_block": map[string]any{"type": "text", "text": ""}}) {
			return gone()
		}
		for i, d := range deltas {
			if i > 0 && reply.Interval > 0 && !wait(reply.Interval, nil) {
				return gone()
			}
			if !send(map[string]any{"type": "content_block_delta", "index": index, "delta": map[string]any{"type": "text_delta", "text": d}}) {
				return gone()
			}
		}
		if !send(map[string]any{"type": "content_block_stop", "index": index}) {
			return gone()
		}
		index++
	}
	if reply.Hold != nil && !wait(0, reply.Hold) {
		return gone()
	}
	stop := "end_turn"
	if tu := reply.ToolUse; tu != nil {
		stop = "tool_use"
		if !send(map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "tool_use", "id": toolID(req, tu), "name": tu.Name, "input": map[string]any{}}}) {
			return gone()
		}
		half := len(tu.Input) / 2
		for _, piece := range []string{tu.Input[:half], tu.Input[half:]} {
			if !send(map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": piece}}) {
				return gone()
			}
		}
		if !send(map[string]any{"type": "content_block_stop", "index": index}) {
			return gone()
		}
	}
	u := usageOf(req, reply)
	if !send(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": u.OutputTokens}}) {
		return gone()
	}
	if !send(map[string]any{"type": "message_stop"}) {
		return gone()
	}
	return OutcomeCompleted
}
