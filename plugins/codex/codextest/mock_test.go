package codextest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records failures instead of failing the real test, so tests can
// check what a helper reports. Fatalf ends the calling goroutine; run the
// helper with fatalOf.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	errors  []string
	fatal   string
	skipped string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errors)
}

// fatalOf runs fn with a fakeTB and returns its Fatalf message ("" if none).
func fatalOf(t *testing.T, fn func(tb testing.TB)) string {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.fatal
}

// body is a Responses API request body like codex's.
func body(input ...map[string]any) string {
	b, err := json.Marshal(map[string]any{
		"model": MockModelName, "reasoning": map[string]any{"effort": "high"}, "stream": true,
		"tools": []any{map[string]any{"type": "function", "name": "exec_command"}, map[string]any{"type": "web_search"}},
		"input": input,
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func user(text string) map[string]any {
	return map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": text}}}
}

func assistant(text string) map[string]any {
	return map[string]any{"type": "message", "role": "assistant", "content": []any{map[string]any{"type": "output_text", "text": text}}}
}

func call(id string) map[string]any {
	return map[string]any{"type": "function_call", "call_id": id, "name": "exec_command", "arguments": `{"cmd":"echo hi"}`}
}

func output(id, out string) map[string]any {
	return map[string]any{"type": "function_call_output", "call_id": id, "output": out}
}

// sseEvent is one data: payload of a stream.
type sseEvent struct {
	Type  string          `json:"type"`
	Delta string          `json:"delta"`
	Item  json.RawMessage `json:"item"`
}

// post sends body to the mock and returns the status and the stream's events.
func post(ctx context.Context, t *testing.T, m *MockModel, body string) (int, []sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.BaseURL()+"/responses", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var evs []sseEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e sseEvent
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		evs = append(evs, e)
	}
	return resp.StatusCode, evs
}

func types(evs []sseEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestMockStreamsTextAsServerSentEvents(t *testing.T) {
	m := NewMockModel(t, nil)
	env := map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "<environment_context>\n</environment_context>"}}}
	status, evs := post(t.Context(), t, m, body(env, user("hello there\nmore")))
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	want := []string{"response.created", "response.output_item.added", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.delta", "response.output_item.done", "response.completed"}
	if got := types(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	var text string
	for _, e := range evs {
		text += e.Delta
	}
	if text != "echo: hello there" {
		t.Errorf("deltas make %q, want the first line echoed", text)
	}

	reqs := m.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[0]
	if r.Seq != 1 || r.Model != MockModelName || r.ReasoningEffort != "high" || r.Outcome != OutcomeCompleted ||
		!slices.Equal(r.Tools, []string{"exec_command", "web_search"}) || len(r.Input) != 2 {
		t.Errorf("request %+v", r)
	}
	if got := r.UserTexts(); !slices.Equal(got, []string{"hello there\nmore"}) {
		t.Errorf("user texts %q, want the prompt without codex's environment context", got)
	}
}

func TestDefaultScript(t *testing.T) {
	tests := []struct {
		name  string
		input []map[string]any
		text  string // want this text, or
		call  string // want a call with these arguments
		n     int    // want this many deltas (0: don't check)
	}{
		{name: "a plain prompt is echoed, first line only", input: []map[string]any{user("hi\nthere")}, text: "echo: hi"},
		{name: "TOOL_CALL asks to run echo hi", input: []map[string]any{user("do TOOL_CALL")}, call: `{"cmd":"echo hi"}`},
		{name: "TOOL_CALL with the output back answers with it",
			input: []map[string]any{user("do TOOL_CALL"), call("c1"), output("c1", "Chunk ID: 1\nProcess exited with code 0\nOutput:\nhi\n")},
			text:  "tool output: hi"},
		{name: "a second TOOL_CALL turn calls the tool again",
			input: []map[string]any{user("do TOOL_CALL"), call("c1"), output("c1", "hi"), assistant("tool output: hi"), user("again TOOL_CALL")},
			call:  `{"cmd":"echo hi"}`},
		{name: "SLOW_STREAM streams many small deltas", input: []map[string]any{user("SLOW_STREAM")}, n: SlowDeltas},
		{name: "REMEMBER lists the earlier user messages",
			input: []map[string]any{user("one"), assistant("echo: one"), user("two"), map[string]any{"type": "message", "role": "user", "content": "<turn_aborted>x</turn_aborted>"}, user("REMEMBER")},
			text:  "I remember: one | two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := parseRequest([]byte(body(tt.input...)), &r); err != nil {
				t.Fatal(err)
			}
			reply := DefaultScript(r)
			switch {
			case tt.call != "":
				if reply.Call == nil || reply.Call.Name != "exec_command" || reply.Call.Arguments != tt.call || reply.Text != "" {
					t.Errorf("reply %+v, want an exec_command call %s", reply, tt.call)
				}
			case tt.n > 0:
				if len(reply.Deltas) != tt.n || reply.Interval <= 0 || reply.Call != nil {
					t.Errorf("reply has %d deltas every %v, want %d spaced out", len(reply.Deltas), reply.Interval, tt.n)
				}
			default:
				if reply.Text != tt.text || reply.Call != nil {
					t.Errorf("reply %+v, want text %q", reply, tt.text)
				}
			}
		})
	}
}

func TestMockStreamsAFunctionCall(t *testing.T) {
	m := NewMockModel(t, nil)
	_, evs := post(t.Context(), t, m, body(user("TOOL_CALL")))
	if got, want := types(evs), []string{"response.created", "response.output_item.done", "response.completed"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	var item map[string]string
	if err := json.Unmarshal(evs[1].Item, &item); err != nil {
		t.Fatal(err)
	}
	if item["type"] != "function_call" || item["call_id"] != "call_1" || item["name"] != "exec_command" || item["arguments"] != `{"cmd":"echo hi"}` {
		t.Errorf("item %v", item)
	}
}

func TestMockStopsStreamingWhenTheClientGoes(t *testing.T) {
	m := NewMockModel(t, func(Request) Reply { return SlowReply(1000, time.Second) })
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.BaseURL()+"/responses", strings.NewReader(body(user("x"))))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read up to the first delta, then hang up.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.Contains(sc.Text(), "output_text.delta") {
	}
	cancel()
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Second) // far below the 1000 s the reply would take
	defer wcancel()
	r, err := m.WaitRequest(wctx, func(r Request) bool { return r.Outcome != OutcomeStreaming })
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != OutcomeDisconnected {
		t.Errorf("outcome %q, want disconnected", r.Outcome)
	}
}

func TestMockClosesStreamsWhenClosed(t *testing.T) {
	m := NewMockModel(t, func(Request) Reply { return SlowReply(1000, time.Second) })
	go func() {
		if _, err := m.WaitRequest(t.Context(), func(Request) bool { return true }); err == nil {
			m.Close()
		}
	}()
	_, evs := post(t.Context(), t, m, body(user("x")))
	if n := len(evs); n == 0 || evs[n-1].Type == "response.completed" {
		t.Errorf("events %v, want a stream cut short", types(evs))
	}
	if r := m.Requests()[0]; r.Outcome != OutcomeClosed {
		t.Errorf("outcome %q, want closed", r.Outcome)
	}
}

func TestMockScriptedHTTPError(t *testing.T) {
	m := NewMockModel(t, func(Request) Reply { return Reply{Status: http.StatusInternalServerError} })
	status, _ := post(t.Context(), t, m, body(user("x")))
	if status != http.StatusInternalServerError || m.Requests()[0].Outcome != OutcomeHTTPError {
		t.Errorf("status %d outcome %q, want 500 and http-error", status, m.Requests()[0].Outcome)
	}
}

func TestMockRecordsOtherPaths(t *testing.T) {
	m := NewMockModel(t, nil)
	resp, err := http.Get(m.BaseURL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !slices.Equal(m.Other(), []string{"GET /v1/models"}) || len(m.Requests()) != 0 {
		t.Errorf("status %d, other %v, requests %d", resp.StatusCode, m.Other(), len(m.Requests()))
	}
}

// TestProxyGuardRefusesTheOutside sends requests through the mock as a
// proxy, the way codex would with Env's HTTPS_PROXY: nothing leaves
// 127.0.0.1 (the client only ever connects to the proxy) and the test is
// failed.
func TestProxyGuardRefusesTheOutside(t *testing.T) {
	tb := &fakeTB{TB: t}
	m := NewMockModel(tb, nil)
	proxy, err := url.Parse(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	t.Cleanup(client.CloseIdleConnections)
	for _, target := range []string{"https://example.invalid/", "http://example.invalid/plain"} {
		resp, err := client.Get(target)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET %s through the guard: %d, want 403", target, resp.StatusCode)
			}
		}
	}
	errs := tb.Errors()
	if len(errs) != 2 || !strings.Contains(errs[0], "CONNECT example.invalid:443") || !strings.Contains(errs[1], "http://example.invalid/plain") {
		t.Errorf("test failures %q, want one per outside request", errs)
	}
	// The mock's own API still works through the proxy.
	req, _ := http.NewRequest(http.MethodPost, m.BaseURL()+"/responses", strings.NewReader(body(user("hi"))))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(m.Requests()) != 1 {
		t.Errorf("POST through the proxy to the mock itself: %d, %d requests", resp.StatusCode, len(m.Requests()))
	}
}

func TestMockFailsTheTestOnABadBody(t *testing.T) {
	tb := &fakeTB{TB: t}
	m := NewMockModel(tb, nil)
	status, _ := post(t.Context(), t, m, "not json")
	if status != http.StatusBadRequest || len(tb.Errors()) != 1 {
		t.Errorf("status %d, failures %q; want 400 and one failure", status, tb.Errors())
	}
}

func TestScriptPanicFailsTheTest(t *testing.T) {
	tb := &fakeTB{TB: t}
	m := NewMockModel(tb, func(Request) Reply { panic("boom") })
	status, _ := post(t.Context(), t, m, body(user("x")))
	if status != http.StatusInternalServerError || len(tb.Errors()) != 1 || !strings.Contains(tb.Errors()[0], "boom") {
		t.Errorf("status %d, failures %q; want 500 and the panic reported", status, tb.Errors())
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(body(user("hi"), call("c"), output("c", "out"))))
	f.Add([]byte(`{"input":[{"role":"user","content":"plain"},{"type":"function_call_output","output":[{"type":"input_text","text":"x"}]}]}`))
	f.Add([]byte(`{"input":[{"type":"message","content":{}}],"tools":[{}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := parseRequest(b, &r); err != nil {
			return
		}
		// The helpers work on whatever parsed.
		_ = r.UserTexts()
		_ = r.LastUserText()
		_ = r.HasFunctionOutput()
		_ = DefaultScript(r)
	})
}
