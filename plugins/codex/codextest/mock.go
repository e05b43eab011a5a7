package codextest

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

// MockModelName is the model NewCodexHome configures.
const MockModelName = "mock-model"

// MockModel is a Responses API server on 127.0.0.1 for codex to talk to.
// It answers POST /v1/responses with Server-Sent Events produced by its
// Script, records every request, and refuses (and fails the test on) any
// request codex tries to send elsewhere through the proxy guard (see Env).
type MockModel struct {
	*mockrec.Server // URL, Close, Closing: the HTTP side on 127.0.0.1

	t      testing.TB
	script Script

	log *mockrec.Log[Request] // the requests, and "METHOD /path" of those it does not serve
}

// Script decides the reply to a request. It is called once per request,
// on the request's own goroutine (requests can overlap), and should return
// at once: to hold an answer open, reply with deltas spaced by Interval.
type Script func(req Request) Reply

// Reply is what the mock streams back for one request: an assistant
// message (Text, streamed as Deltas with Interval between them), then an
// optional function call. Status, when non-zero, replaces all of it with
// that HTTP error status.
type Reply struct {
	// Text is the assistant message; empty for none.
	Text string
	// Deltas are the pieces Text is streamed in; nil splits Text after
	// each space. When set, Text is ignored and the message is their
	// concatenation.
	Deltas []string
	// Interval is the pause between deltas. The answer stops as soon as
	// the client disconnects.
	Interval time.Duration
	// Call is a function call the model makes after the message.
	Call *FunctionCall
	// Status is an HTTP error status to answer with instead of a stream
	// (e.g. 500).
	Status int
}

// FunctionCall is a tool call in a Reply.
type FunctionCall struct {
	// Name is the tool, e.g. "exec_command".
	Name string
	// Arguments is the JSON object of arguments, e.g. `{"cmd":"echo hi"}`.
	Arguments string
	// CallID defaults to "call_<request seq>".
	CallID string
}

// NewMockModel starts a mock on 127.0.0.1 that answers with script (nil
// means DefaultScript) and closes it when the test ends.
func NewMockModel(t testing.TB, script Script) *MockModel {
	t.Helper()
	if script == nil {
		script = DefaultScript
	}
	m := &MockModel{t: t, script: script, log: mockrec.NewLog[Request]()}
	// httptest listens on 127.0.0.1:0.
	m.Server = mockrec.StartServer(t, http.HandlerFunc(m.serveHTTP))
	return m
}

// BaseURL is the provider base_url for codex: URL() + "/v1".
func (m *MockModel) BaseURL() string { return m.URL() + "/v1" }

// Requests returns every /v1/responses request so far, in order.
func (m *MockModel) Requests() []Request { return m.log.All() }

// Other returns "METHOD /path" for each request the mock did not serve
// (anything but POST /v1/responses); it answered them 404.
func (m *MockModel) Other() []string { return m.log.Other() }

// WaitRequest waits until a recorded request satisfies pred and returns the
// first that does. pred is evaluated again whenever a request arrives or an
// answer ends (its Outcome changes), so a test can wait for either.
func (m *MockModel) WaitRequest(ctx context.Context, pred func(Request) bool) (Request, error) {
	return m.log.Wait(ctx, pred)
}

// record appends r, numbering it, and returns its Seq.
func (m *MockModel) record(r Request) int {
	return m.log.Add(func(seq int) Request { r.Seq = seq; return r })
}

func (m *MockModel) setOutcome(seq int, o Outcome) {
	m.log.Update(seq, func(r *Request) { r.Outcome = o })
}

func (m *MockModel) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// A proxied request names its target: CONNECT host:port, or an
	// absolute URL. Only the mock itself is an allowed target.
	if target, foreign := mockrec.Foreign(r, m.URL()); foreign {
		m.t.Errorf("codextest: codex tried to reach %s %s outside the mock model; the proxy guard refused it "+
			"(codex must run offline: check the config NewCodexHome writes)", r.Method, target)
		http.Error(w, "codextest: offline test, no outside connections", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/responses" {
		m.log.AddOther(r.Method + " " + r.URL.Path)
		http.NotFound(w, r)
		return
	}
	m.serveResponses(w, r)
}

func (m *MockModel) serveResponses(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{At: time.Now(), Header: r.Header.Clone(), Body: body, Outcome: OutcomeStreaming}
	perr := parseRequest(body, &req)
	req.Seq = m.record(req)
	if perr != nil {
		m.t.Errorf("codextest: mock model request %d: %v", req.Seq, perr)
		m.setOutcome(req.Seq, OutcomeHTTPError)
		http.Error(w, perr.Error(), http.StatusBadRequest)
		return
	}

	reply, ok := mockrec.RunScript(m.t, "codextest", req.Seq, m.script, req)
	if !ok || reply.Status != 0 {
		status := reply.Status
		if !ok {
			status = http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"codextest: scripted HTTP %d","type":"server_error"}}`, status)
		m.setOutcome(req.Seq, OutcomeHTTPError)
		return
	}
	m.setOutcome(req.Seq, m.stream(r.Context(), w, req, reply))
}

// stream sends reply as the Responses API's Server-Sent Events.
func (m *MockModel) stream(ctx context.Context, w http.ResponseWriter, req Request, reply Reply) Outcome {
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

	respID := fmt.Sprintf("resp_%d", req.Seq)
	if !send(map[string]any{"type": "response.created", "response": map[string]any{"id": respID}}) {
		return gone()
	}
	index := 0
	deltas := reply.Deltas
	if deltas == nil && reply.Text != "" {
		deltas = strings.SplitAfter(reply.Text, " ")
	}
	text := strings.Join(deltas, "")
	if len(deltas) > 0 {
		msgID := fmt.Sprintf("msg_%d", req.Seq)
		if !send(map[string]any{"type": "response.output_item.added", "output_index": index,
			"item": map[string]any{"type": "message", "id": msgID, "role": "assistant", "content": []any{}}}) {
			return gone()
		}
		pacer := mockrec.NewPacer(reply.Interval)
		defer pacer.Stop()
		for i, d := range deltas {
			if i > 0 && !m.Pace(ctx, pacer) {
				return gone()
			}
			if !send(map[string]any{"type": "response.output_text.delta", "item_id": msgID,
				"output_index": index, "content_index": 0, "delta": d}) {
				return gone()
			}
		}
		if !send(map[string]any{"type": "response.output_item.done", "output_index": index,
			"item": map[string]any{"type": "message", "id": msgID, "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}}) {
			return gone()
		}
		index++
	}
	if c := reply.Call; c != nil {
		callID := c.CallID
		if callID == "" {
			callID = fmt.Sprintf("call_%d", req.Seq)
		}
		if !send(map[string]any{"type": "response.output_item.done", "output_index": index,
			"item": map[string]any{"type": "function_call", "id": fmt.Sprintf("fc_%d", req.Seq),
				"call_id": callID, "name": c.Name, "arguments": c.Arguments}}) {
			return gone()
		}
	}
	in, out := len(req.Body)/4+1, len(text)/4+1 // roughly a token per 4 bytes
	if !send(map[string]any{"type": "response.completed", "response": map[string]any{"id": respID,
		"usage": map[string]any{"input_tokens": in, "output_tokens": out, "total_tokens": in + out}}}) {
		return gone()
	}
	return OutcomeCompleted
}
