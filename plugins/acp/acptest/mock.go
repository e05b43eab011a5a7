package acptest

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

// MockGemini is a Gemini API server on 127.0.0.1 for gemini-cli to talk
// to. It answers POST /v1beta/models/<model>:streamGenerateContent?alt=sse
// (the model's turns) from its Script with Server-Sent Events,
// :generateContent (gemini's model router asks it to rate a prompt's
// complexity) with a fixed low score, and :countTokens; it records every
// request, and refuses (and fails the test on) any request gemini tries to
// send elsewhere through the proxy guard (see GeminiEnv).
type MockGemini struct {
	*mockrec.Server // URL, Close, Closing: the HTTP side on 127.0.0.1

	t      testing.TB
	script Script
	// log holds the streamGenerateContent requests and, as Other, the
	// requests the mock does not serve; utility the generateContent and
	// countTokens requests (numbered apart).
	log     *mockrec.Log[Request]
	utility *mockrec.Log[Request]
}

// Script decides the reply to a streamGenerateContent request. It is
// called once per request, on the request's own goroutine, and should
// return at once: to hold an answer open, set Interval or Hold.
type Script func(req Request) Reply

// Reply is what the mock streams back for one request: text (Deltas, with
// Interval between them), then an optional function call. Status, when
// non-zero, replaces it all with that HTTP error status. Hold keeps the
// stream open after the last delta until the client goes away.
type Reply struct {
	Text     string
	Deltas   []string // nil splits Text after each space
	Interval time.Duration
	Call     *FunctionCall
	Status   int
	Hold     bool
}

// FunctionCall is a tool call in a Reply, e.g. run_shell_command
// {"command": "echo hi"} or read_file {"file_path": "notes.txt"}.
type FunctionCall struct {
	Name string
	Args map[string]any
}

// Outcome is how the mock's answer to a request ended.
type Outcome string

const (
	OutcomeStreaming    Outcome = "streaming"
	OutcomeCompleted    Outcome = "completed"
	OutcomeDisconnected Outcome = "disconnected" // gemini went away (a cancel)
	OutcomeHTTPError    Outcome = "http-error"
	OutcomeClosed       Outcome = "closed"
)

// NewMockGemini starts a mock on 127.0.0.1 that answers with script (nil:
// DefaultScript) and closes it when the test ends.
func NewMockGemini(t testing.TB, script Script) *MockGemini {
	t.Helper()
	if script == nil {
		script = DefaultScript
	}
	m := &MockGemini{t: t, script: script, log: mockrec.NewLog[Request](), utility: mockrec.NewLog[Request]()}
	m.Server = mockrec.StartServer(t, http.HandlerFunc(m.serveHTTP))
	return m
}

// Requests returns every streamGenerateContent request so far, in order.
func (m *MockGemini) Requests() []Request { return m.log.All() }

// Utility returns the generateContent and countTokens requests.
func (m *MockGemini) Utility() []Request { return m.utility.All() }

// Other returns "METHOD /path" of each request the mock did not serve.
func (m *MockGemini) Other() []string { return m.log.Other() }

// WaitRequest waits until a recorded request satisfies pred (evaluated
// again whenever a request arrives or an answer ends) and returns it.
func (m *MockGemini) WaitRequest(ctx context.Context, pred func(Request) bool) (Request, error) {
	return m.log.Wait(ctx, pred)
}

func (m *MockGemini) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if target, foreign := mockrec.Foreign(r, m.URL()); foreign {
		m.t.Errorf("acptest: gemini tried to reach %s %s outside the mock; the proxy guard refused it (gemini must run offline)", r.Method, target)
		http.Error(w, "acptest: offline test, no outside connections", http.StatusForbidden)
		return
	}
	_, action, _ := strings.Cut(r.URL.Path, ":")
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1beta/models/") {
		action = ""
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{At: time.Now(), Header: r.Header.Clone(), Body: body, Action: action, Outcome: OutcomeStreaming}
	req.Model, _, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1beta/models/"), ":")
	switch action {
	case "streamGenerateContent":
		if err := parseRequest(body, &req); err != nil {
			m.t.Errorf("acptest: a streamGenerateContent request gemini sent does not parse: %v", err)
		}
		m.serveStream(w, r, req)
	case "generateContent", "countTokens":
		_ = parseRequest(body, &req)
		req.Outcome = OutcomeCompleted
		m.utility.Add(func(seq int) Request { req.Seq = seq; return req })
		w.Header().Set("Content-Type", "application/json")
		if action == "countTokens" {
			fmt.Fprintf(w, `{"totalTokens":%d}`, len(body)/4+1)
			return
		}
		// The router's classifier: a simple prompt.
		_ = json.NewEncoder(w).Encode(chunk([]map[string]any{{"text": `{"complexity_reasoning":"mock","complexity_score":10}`}}, "STOP", 10, 5))
	default:
		m.log.AddOther(r.Method + " " + r.URL.Path)
		http.NotFound(w, r)
	}
}

func (m *MockGemini) serveStream(w http.ResponseWriter, r *http.Request, req Request) {
	req.Seq = m.log.Add(func(seq int) Request { req.Seq = seq; return req })
	reply, ok := mockrec.RunScript(m.t, "acptest", req.Seq, m.script, req)
	var outcome Outcome
	if !ok || reply.Status != 0 {
		status := reply.Status
		if !ok {
			status = http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"acptest: scripted HTTP %d","status":"INTERNAL"}}`, status, status)
		outcome = OutcomeHTTPError
	} else {
		outcome = m.stream(r.Context(), w, req, reply)
	}
	m.log.Update(req.Seq, func(r *Request) { r.Outcome = outcome })
}

// chunk is one GenerateContentResponse.
func chunk(parts []map[string]any, finish string, in, out int) map[string]any {
	cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
	if finish != "" {
		cand["finishReason"] = finish
	}
	return map[string]any{
		"candidates":    []any{cand},
		"usageMetadata": map[string]any{"promptTokenCount": in, "candidatesTokenCount": out, "totalTokenCount": in + out},
		"modelVersion":  "mock-gemini",
	}
}

// stream sends reply as Server-Sent Events of GenerateContentResponse.
func (m *MockGemini) stream(ctx context.Context, w http.ResponseWriter, req Request, reply Reply) Outcome {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v map[string]any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\r\n\r\n", b); err != nil {
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
	deltas := reply.Deltas
	if deltas == nil && reply.Text != "" {
		deltas = strings.SplitAfter(reply.Text, " ")
	}
	in, out := len(req.Body)/4+1, len(strings.Join(deltas, ""))/4+1
	pacer := mockrec.NewPacer(reply.Interval)
	defer pacer.Stop()
	for i, d := range deltas {
		if i > 0 && !m.Pace(ctx, pacer) {
			return gone()
		}
		if !send(chunk([]map[string]any{{"text": d}}, "", in, out)) {
			return gone()
		}
	}
	if reply.Hold {
		select {
		case <-ctx.Done():
			return gone()
		case <-m.Closing():
			return OutcomeClosed
		}
	}
	parts := []map[string]any{{"text": ""}}
	if c := reply.Call; c != nil {
		args := c.Args
		if args == nil {
			args = map[string]any{}
		}
		parts = []map[string]any{{"functionCall": map[string]any{"name": c.Name, "args": args}}}
	}
	if !send(chunk(parts, "STOP", in, out)) {
		return gone()
	}
	return OutcomeCompleted
}
