package claudetest

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
// check what the mock reports.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errors)
}

// body is a Messages API request body like Claude Code's.
func body(stream bool, messages ...map[string]any) string {
	b, err := json.Marshal(map[string]any{
		"model": "claude-test", "max_tokens": 1000, "stream": stream,
		"system":   []any{map[string]any{"type": "text", "text": "You are a test."}},
		"tools":    []any{map[string]any{"name": "Bash"}, map[string]any{"name": "Read"}},
		"messages": messages,
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func user(text string) map[string]any {
	return map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "text", "text": "<system-reminder>\nnoise\n</system-reminder>"},
		map[string]any{"type": "text", "text": text},
	}}
}

// sseEvent is one Server-Sent Event the mock sent.
type sseEvent struct {
	Name string
	Data map[string]any
}

// post sends a request body to the mock and returns the SSE events (or
// the JSON body, as one event named "json") it answered with.
func post(t *testing.T, ctx context.Context, m *MockAnthropic, path, b string) (int, []sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+path, strings.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil // the caller cancelled it
		}
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var evs []sseEvent
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var d map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&d)
		return resp.StatusCode, []sseEvent{{Name: "json", Data: d}}
	}
	sc := bufio.NewScanner(resp.Body)
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var d map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				t.Fatalf("SSE data %q: %v", line, err)
			}
			if d["type"] != name {
				t.Errorf("SSE event %q carries type %v", name, d["type"])
			}
			evs = append(evs, sseEvent{Name: name, Data: d})
		}
	}
	return resp.StatusCode, evs
}

func names(evs []sseEvent) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Name)
	}
	return strings.Join(out, " ")
}

func TestMockStreamsTextAndToolUse(t *testing.T) {
	m := NewMockAnthropic(t, func(req Request) Reply {
		return Reply{Deltas: []string{"hello ", "world"}, ToolUse: &ToolUse{Name: "Bash", Input: `{"command":"echo hi"}`}}
	})
	status, evs := post(t, context.Background(), m, "/v1/messages?beta=true", body(true, user("do it")))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	want := "message_start content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if got := names(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	var text, input string
	for _, e := range evs {
		if d, ok := e.Data["delta"].(map[string]any); ok {
			switch d["type"] {
			case "text_delta":
				text += d["text"].(string)
			case "input_json_delta":
				input += d["partial_json"].(string)
			}
		}
	}
	if text != "hello world" || input != `{"command":"echo hi"}` {
		t.Errorf("text %q, tool input %q", text, input)
	}
	if stop := evs[9].Data["delta"].(map[string]any)["stop_reason"]; stop != "tool_use" {
		t.Errorf("stop_reason %v, want tool_use", stop)
	}
	reqs := m.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[0]
	if r.Seq != 1 || r.Model != "claude-test" || !r.Stream || r.Path != "/v1/messages?beta=true" || r.System != "You are a test." ||
		!slices.Equal(r.Tools, []string{"Bash", "Read"}) || r.LastUserText() != "do it" || r.Outcome != OutcomeCompleted || r.Usage.InputTokens == 0 {
		t.Errorf("recorded %+v", r)
	}
}

func TestMockNonStreamingCountTokensAndErrors(t *testing.T) {
	m := NewMockAnthropic(t, func(req Request) Reply {
		if strings.Contains(req.LastUserText(), "fail") {
			return Reply{Status: 529, ErrorType: "overloaded_error"}
		}
		return DefaultScript(req)
	})
	ctx := context.Background()
	status, evs := post(t, ctx, m, "/v1/messages", body(false, user("plain\nsecond line")))
	if status != 200 || evs[0].Name != "json" {
		t.Fatalf("status %d, %v", status, evs)
	}
	content := evs[0].Data["content"].([]any)
	if got := content[0].(map[string]any)["text"]; got != "echo: plain" {
		t.Errorf("text %v", got)
	}
	status, evs = post(t, ctx, m, "/v1/messages", body(true, user("fail now")))
	if status != 529 || evs[0].Data["error"].(map[string]any)["type"] != "overloaded_error" {
		t.Errorf("error answer %d %v", status, evs)
	}
	status, evs = post(t, ctx, m, "/v1/messages/count_tokens", body(false, user("count")))
	if status != 200 || evs[0].Data["input_tokens"].(float64) <= 0 {
		t.Errorf("count_tokens %d %v", status, evs)
	}
	if reqs := m.Requests(); len(reqs) != 2 || reqs[1].Outcome != OutcomeHTTPError {
		t.Errorf("requests %+v", reqs)
	}
}

func TestMockHoldsUntilReleasedOrDisconnected(t *testing.T) {
	release := make(chan struct{})
	m := NewMockAnthropic(t, func(req Request) Reply {
		if strings.Contains(req.LastUserText(), "forever") {
			return Reply{Text: "waiting", Hold: make(chan struct{})}
		}
		return Reply{Text: "held", Hold: release}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan string)
	go func() {
		_, evs := post(t, ctx, m, "/v1/messages", body(true, user("hold")))
		done <- names(evs)
	}()
	if _, err := m.WaitRequest(ctx, func(r Request) bool { return r.Seq == 1 }); err != nil {
		t.Fatal(err)
	}
	close(release)
	if got := <-done; !strings.HasSuffix(got, "message_stop") {
		t.Errorf("released answer ended with %s", got)
	}

	cctx, ccancel := context.WithCancel(ctx)
	go func() {
		_, evs := post(t, cctx, m, "/v1/messages", body(true, user("forever")))
		done <- names(evs)
	}()
	if _, err := m.WaitRequest(ctx, func(r Request) bool { return r.Seq == 2 }); err != nil {
		t.Fatal(err)
	}
	ccancel()
	<-done
	if _, err := m.WaitRequest(ctx, func(r Request) bool { return r.Seq == 2 && r.Outcome == OutcomeDisconnected }); err != nil {
		t.Fatalf("the disconnect was not recorded: %v (%+v)", err, m.Requests())
	}
}

func TestMockFailsUnexpectedPathsAndForeignHosts(t *testing.T) {
	f := &fakeTB{TB: t}
	m := NewMockAnthropic(f, nil)
	resp, err := http.Get(m.URL() + "/api/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || !slices.Equal(m.Other(), []string{"GET /api/hello"}) {
		t.Errorf("status %d, other %v", resp.StatusCode, m.Other())
	}
	proxy, _ := url.Parse(m.URL())
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	resp, err = client.Get("http://statsig.anthropic.com/v1/initialize")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("proxied request answered %d", resp.StatusCode)
	}
	errs := f.Errors()
	if len(errs) != 2 || !strings.Contains(errs[0], "/api/hello") || !strings.Contains(errs[1], "statsig.anthropic.com") {
		t.Errorf("failures reported: %q", errs)
	}
}

func TestRequestHelpers(t *testing.T) {
	var r Request
	b := body(true,
		user("first STEER_TOOL"),
		map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": map[string]any{"command": "sleep 3"}}}},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done\n"}}},
		map[string]any{"role": "system", "content": []any{map[string]any{"type": "text", "text": SteerPrefix + "urgent thing\n\nThis is how Claude Code surfaces messages ..."}}},
	)
	if err := ParseRequest([]byte(b), &r); err != nil {
		t.Fatal(err)
	}
	if got := r.UserTexts(); !slices.Equal(got, []string{"first STEER_TOOL"}) {
		t.Errorf("UserTexts %q", got)
	}
	if got := r.Steers(); !slices.Equal(got, []string{"urgent thing"}) {
		t.Errorf("Steers %q", got)
	}
	if res := r.ToolResults(); len(res) != 1 || res[0].Text != "done\n" || res[0].ToolUseID != "toolu_1" {
		t.Errorf("ToolResults %+v", res)
	}
	if !r.Contains("sleep 3") || r.IsSideRequest() {
		t.Errorf("Contains/IsSideRequest")
	}
	if reply := DefaultScript(r); reply.Text != "steered: urgent thing" {
		t.Errorf("DefaultScript after a folded steer: %+v", reply)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(body(true, user("hi"))))
	f.Add([]byte(`{"messages":[{"role":"user","content":"x"}],"system":"s"}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"tool_result","content":[{"type":"text","text":"a"}]}]}]}`))
	f.Add([]byte(`{"messages":[{"content":7}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if ParseRequest(b, &r) == nil {
			_ = DefaultScript(r)
			_, _, _ = r.UserTexts(), r.Steers(), r.ToolResults()
		}
	})
}
