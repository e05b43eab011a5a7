package jsonrpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/sdktest"
)

func TestDecodeLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		line   string
		kind   Kind
		id     string
		method string
		errMsg string // the Error's message, for responses
	}{
		{"a server request has a method and an id", `{"id":0,"method":"item/commandExecution/requestApproval","params":{}}`, Request, "0", "item/commandExecution/requestApproval", ""},
		{"a string id is a request id too", `{"id":"a1","method":"x"}`, Request, `"a1"`, "x", ""},
		{"a notification has no id", `{"method":"turn/started","params":{"turn":{}},"emittedAtMs":1}`, Notification, "", "turn/started", ""},
		{"a null id is no id", `{"id":null,"method":"warning"}`, Notification, "", "warning", ""},
		{"a response has a result", `{"id":3,"result":{"turn":{"id":"t"}}}`, Response, "3", "", ""},
		{"a null result is still an answer", `{"id":3,"result":null}`, Response, "3", "", ""},
		{"an error response", `{"id":4,"error":{"code":-32600,"message":"no active turn to steer"}}`, Response, "4", "", "no active turn to steer"},
		{"a malformed error still answers", `{"id":4,"error":"oops"}`, Response, "4", "", `malformed error "oops"`},
		{"surrounding blanks are fine", "  {\"method\":\"m\"}\r", Notification, "", "m", ""},
		{"not JSON", `this is not json`, Invalid, "", "", ""},
		{"truncated JSON", `{"method":"m"`, Invalid, "", "", ""},
		{"an array is not a message", `[1,2]`, Invalid, "", "", ""},
		{"an object of neither shape", `{"hello":1}`, Invalid, "", "", ""},
		{"an id alone", `{"id":1}`, Invalid, "", "", ""},
		{"a method that is not a string", `{"method":5}`, Invalid, "", "", ""},
		{"an empty method", `{"method":""}`, Invalid, "", "", ""},
		{"an id that is an object", `{"id":{},"result":1}`, Invalid, "", "", ""},
		{"an empty line", ``, Invalid, "", "", ""},
	}
	for _, tt := range tests {
		l, err := DecodeLine([]byte(tt.line))
		if l.Kind != tt.kind || string(l.ID) != tt.id || l.Method != tt.method {
			t.Errorf("%s: DecodeLine(%q) = kind %v id %s method %q, want %v %s %q", tt.name, tt.line, l.Kind, l.ID, l.Method, tt.kind, tt.id, tt.method)
		}
		if (err != nil) != (tt.kind == Invalid) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if tt.errMsg != "" && (l.Err == nil || l.Err.Message != tt.errMsg) {
			t.Errorf("%s: rpc error = %v, want %q", tt.name, l.Err, tt.errMsg)
		}
	}
}

// FuzzDecodeLine: any bytes are classified, never a panic, and what is
// classified has the fields its kind needs.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		`{"id":0,"method":"item/commandExecution/requestApproval","params":{"command":"ls"}}`,
		`{"method":"item/agentMessage/delta","params":{"turnId":"t","delta":"x"}}`,
		`{"id":1,"result":{}}`, `{"id":"x","error":{"code":-32600,"message":"m"}}`, `{"id":1,"error":null}`,
		`this is not json`, `{"id":[1]}`, `{"method":null,"id":2,"result":3}`, "\xff{", `{"ID":1,"RESULT":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeLine(b)
		switch l.Kind {
		case Invalid:
			if err == nil {
				t.Fatalf("%q: invalid without a reason", b)
			}
		case Request:
			if err != nil || l.Method == "" || !Present(l.ID) {
				t.Fatalf("%q: request %+v, %v", b, l, err)
			}
		case Notification:
			if err != nil || l.Method == "" || l.ID != nil {
				t.Fatalf("%q: notification %+v, %v", b, l, err)
			}
		case Response:
			if err != nil || !Present(l.ID) || (l.Err != nil && l.Result != nil) {
				t.Fatalf("%q: response %+v, %v", b, l, err)
			}
		default:
			t.Fatalf("%q: kind %d", b, l.Kind)
		}
	})
}

// peer is the far end of an rpcClient: it reads what the client writes and
// writes what a server would.
type peer struct {
	client *Client
	lines  *bufio.Scanner // what the client wrote
	out    *os.File       // what the client reads
	h      *handlerLog
	done   chan struct{} // the client's reader ended
}

func newPeer(t *testing.T, timeout time.Duration) *peer {
	t.Helper()
	return newPeerWith(t, Options{Name: "the server", Timeout: timeout})
}

func newPeerWith(t *testing.T, opts Options) *peer {
	t.Helper()
	toServerR, toServerW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromServerR, fromServerW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{
		client: NewClient(toServerW, opts),
		lines:  bufio.NewScanner(toServerR),
		out:    fromServerW,
		h:      &handlerLog{changed: make(chan struct{})},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		p.client.ReadLoop(fromServerR, p.h)
	}()
	t.Cleanup(func() {
		_ = fromServerW.Close()
		<-p.done
		_ = toServerW.Close()
		_ = toServerR.Close()
		_ = fromServerR.Close()
	})
	return p
}

func (p *peer) say(t *testing.T, line string) {
	t.Helper()
	if _, err := p.out.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// next returns the next line the client wrote.
func (p *peer) next(t *testing.T) map[string]any {
	t.Helper()
	if !p.lines.Scan() {
		t.Fatalf("no line from the client: %v", p.lines.Err())
	}
	var m map[string]any
	if err := json.Unmarshal(p.lines.Bytes(), &m); err != nil {
		t.Fatalf("the client wrote %q: %v", p.lines.Bytes(), err)
	}
	return m
}

// handlerLog records what the reader hands over.
type handlerLog struct {
	mu      sync.Mutex
	seen    []string
	changed chan struct{}
}

func (h *handlerLog) add(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, s)
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *handlerLog) Notification(method string, _ json.RawMessage) { h.add("notification " + method) }
func (h *handlerLog) Request(id json.RawMessage, method string, _ json.RawMessage) {
	h.add("request " + string(id) + " " + method)
}
func (h *handlerLog) Invalid(text []byte, _ error) { h.add("invalid " + string(text)) }
func (h *handlerLog) Idle()                        {}

func (h *handlerLog) waitFor(t *testing.T, n int) []string {
	t.Helper()
	timer := time.NewTimer(sdktest.WaitLong)
	defer timer.Stop()
	for {
		h.mu.Lock()
		seen, changed := append([]string(nil), h.seen...), h.changed
		h.mu.Unlock()
		if len(seen) >= n {
			return seen
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("handler saw %q, want %d entries", seen, n)
		}
	}
}

func TestClientMatchesAnswersByIDAcrossTheTwoIDSpaces(t *testing.T) {
	t.Parallel()
	p := newPeer(t, sdktest.WaitLong)
	type answer struct {
		raw json.RawMessage
		err error
	}
	got := make(chan answer, 1)
	go func() {
		raw, err := p.client.Call(context.Background(), "turn/start", map[string]any{"threadId": "t"}, nil)
		got <- answer{raw, err}
	}()
	req := p.next(t)
	if _, ok := req["jsonrpc"]; ok || req["method"] != "turn/start" || req["id"] != float64(1) {
		t.Fatalf("request = %v, want id 1, method turn/start, no jsonrpc member", req)
	}
	// A server request with the same id as ours, then garbage, then the
	// answer: each goes where it belongs.
	p.say(t, `{"id":1,"method":"item/commandExecution/requestApproval","params":{}}`)
	p.say(t, `this is not json`)
	p.say(t, `{"id":1,"result":{"turn":{"id":"turn-9"}}}`)
	a := <-got
	if a.err != nil || string(a.raw) != `{"turn":{"id":"turn-9"}}` {
		t.Fatalf("call = %s, %v", a.raw, a.err)
	}
	seen := p.h.waitFor(t, 2)
	if seen[0] != "request 1 item/commandExecution/requestApproval" || seen[1] != "invalid this is not json" {
		t.Errorf("handler saw %q", seen)
	}
	if err := p.client.Reply(json.RawMessage("1"), map[string]string{"decision": "accept"}); err != nil {
		t.Fatal(err)
	}
	if r := p.next(t); r["id"] != float64(1) || r["result"].(map[string]any)["decision"] != "accept" {
		t.Errorf("reply = %v", r)
	}
}

func TestAnErrorAnswerIsAnRPCError(t *testing.T) {
	t.Parallel()
	p := newPeer(t, sdktest.WaitLong)
	errc := make(chan error, 1)
	go func() {
		_, err := p.client.Call(context.Background(), "turn/steer", nil, nil)
		errc <- err
	}()
	p.next(t)
	p.say(t, `{"id":1,"error":{"code":-32600,"message":"no active turn to steer"}}`)
	err := <-errc
	var re *Error
	if !errors.As(err, &re) || re.Code != -32600 || re.Message != "no active turn to steer" {
		t.Fatalf("err = %v, want the *Error", err)
	}
}

func TestEveryRequestHasADeadline(t *testing.T) {
	t.Parallel()
	p := newPeer(t, 100*time.Millisecond)
	go func() {
		for p.lines.Scan() {
		}
	}()
	start := time.Now()
	_, err := p.client.Call(context.Background(), "initialize", nil, nil)
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("call = %v after %v, want ErrTimeout after about 100ms", err, time.Since(start))
	}
	// A late answer goes nowhere and breaks nothing.
	p.say(t, `{"id":1,"result":{}}`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.client.Call(ctx, "turn/interrupt", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("call with a cancelled ctx = %v", err)
	}
}

func TestRequestsFailAtOnceWhenOutputEnds(t *testing.T) {
	t.Parallel()
	p := newPeer(t, sdktest.WaitLong)
	errc := make(chan error, 1)
	go func() {
		_, err := p.client.Call(context.Background(), "thread/start", nil, nil)
		errc <- err
	}()
	p.next(t)
	_ = p.out.Close()
	if err := <-errc; !errors.Is(err, ErrGone) {
		t.Fatalf("pending call = %v, want ErrGone", err)
	}
	<-p.done
	if _, err := p.client.Call(context.Background(), "turn/start", nil, nil); !errors.Is(err, ErrGone) {
		t.Fatalf("call after the end = %v, want ErrGone at once", err)
	}
}

func TestWritesAreWholeLines(t *testing.T) {
	t.Parallel()
	p := newPeer(t, sdktest.WaitLong)
	const writers, each = 8, 50
	big := strings.Repeat("y", 70<<10) // larger than a pipe buffer
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if err := p.client.Notify("n", map[string]string{"text": big}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	p.lines.Buffer(nil, 1<<20)
	for range writers * each {
		if m := p.next(t); m["params"].(map[string]any)["text"] != big {
			t.Fatal("a line was not whole")
		}
	}
	wg.Wait()
}

func TestVersion2AddsTheJSONRPCMemberToEveryMessage(t *testing.T) {
	t.Parallel()
	p := newPeerWith(t, Options{Name: "the agent", Version2: true, Timeout: sdktest.WaitLong})
	go func() {
		_, _ = p.client.Call(context.Background(), "initialize", map[string]int{"protocolVersion": 1}, nil)
	}()
	if m := p.next(t); m["jsonrpc"] != "2.0" || m["method"] != "initialize" || m["id"] != float64(1) {
		t.Fatalf("request = %v", m)
	}
	p.say(t, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	if err := p.client.Notify("session/cancel", map[string]string{"sessionId": "s"}); err != nil {
		t.Fatal(err)
	}
	if m := p.next(t); m["jsonrpc"] != "2.0" || m["method"] != "session/cancel" {
		t.Fatalf("notification = %v", m)
	}
	if err := p.client.Reply(json.RawMessage("0"), map[string]any{"outcome": map[string]string{"outcome": "cancelled"}}); err != nil {
		t.Fatal(err)
	}
	if m := p.next(t); m["jsonrpc"] != "2.0" || m["id"] != float64(0) || m["result"] == nil {
		t.Fatalf("reply = %v", m)
	}
	if err := p.client.ReplyError(json.RawMessage(`"x"`), CodeMethodNotFound, "no"); err != nil {
		t.Fatal(err)
	}
	if m := p.next(t); m["jsonrpc"] != "2.0" || m["id"] != "x" || m["error"].(map[string]any)["code"] != float64(CodeMethodNotFound) {
		t.Fatalf("error reply = %v", m)
	}
}

// TestGoAnswersInWireOrder: a request without a deadline is answered on the
// reader goroutine after every line the peer sent before its answer.
func TestGoAnswersInWireOrder(t *testing.T) {
	t.Parallel()
	p := newPeer(t, 50*time.Millisecond) // Go has no deadline: this must not matter
	type answer struct {
		raw  json.RawMessage
		err  error
		seen int // notifications the handler had when the answer came
	}
	got := make(chan answer, 2)
	_, err := p.client.Go("session/prompt", nil, func(raw json.RawMessage, err error) {
		p.h.mu.Lock()
		n := len(p.h.seen)
		p.h.mu.Unlock()
		got <- answer{raw, err, n}
	})
	if err != nil {
		t.Fatal(err)
	}
	p.next(t)
	_, err = p.client.Go("session/prompt", nil, func(raw json.RawMessage, err error) { got <- answer{raw, err, -1} })
	if err != nil {
		t.Fatal(err)
	}
	p.next(t)
	p.say(t, `{"method":"session/update","params":{}}`)
	p.say(t, `{"method":"session/update","params":{}}`)
	p.say(t, `{"id":1,"result":{"stopReason":"end_turn"}}`)
	a := <-got
	if a.err != nil || string(a.raw) != `{"stopReason":"end_turn"}` || a.seen != 2 {
		t.Fatalf("first answer = %+v, want the result after both updates", a)
	}
	p.say(t, `{"id":2,"error":{"code":-32603,"message":"boom"}}`)
	a = <-got
	var re *Error
	if !errors.As(a.err, &re) || re.Code != -32603 {
		t.Fatalf("second answer = %+v, want the *Error", a)
	}
	// A third one fails with ErrGone when the output ends.
	_, err = p.client.Go("session/prompt", nil, func(raw json.RawMessage, err error) { got <- answer{raw, err, -1} })
	if err != nil {
		t.Fatal(err)
	}
	p.next(t)
	_ = p.out.Close()
	if a := <-got; !errors.Is(a.err, ErrGone) {
		t.Fatalf("answer after the end = %+v, want ErrGone", a)
	}
	<-p.done
	if _, err := p.client.Go("x", nil, func(json.RawMessage, error) { t.Error("done called for a request never sent") }); !errors.Is(err, ErrGone) {
		t.Fatalf("Go after the end = %v", err)
	}
}

func TestIDString(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{`"a b"`: "a b", `12`: "12", `-1`: "-1"} {
		if got := IDString(json.RawMessage(raw)); got != want {
			t.Errorf("IDString(%s) = %q, want %q", raw, got, want)
		}
	}
}
