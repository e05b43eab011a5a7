package main

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

	"github.com/hashicorp/go-hclog"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestDecodeLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		line   string
		kind   lineKind
		id     string
		method string
		errMsg string // the rpcError's message, for responses
	}{
		{"a server request has a method and an id", `{"id":0,"method":"item/commandExecution/requestApproval","params":{}}`, lineRequest, "0", "item/commandExecution/requestApproval", ""},
		{"a string id is a request id too", `{"id":"a1","method":"x"}`, lineRequest, `"a1"`, "x", ""},
		{"a notification has no id", `{"method":"turn/started","params":{"turn":{}},"emittedAtMs":1}`, lineNotification, "", "turn/started", ""},
		{"a null id is no id", `{"id":null,"method":"warning"}`, lineNotification, "", "warning", ""},
		{"a response has a result", `{"id":3,"result":{"turn":{"id":"t"}}}`, lineResponse, "3", "", ""},
		{"a null result is still an answer", `{"id":3,"result":null}`, lineResponse, "3", "", ""},
		{"an error response", `{"id":4,"error":{"code":-32600,"message":"no active turn to steer"}}`, lineResponse, "4", "", "no active turn to steer"},
		{"a malformed error still answers", `{"id":4,"error":"oops"}`, lineResponse, "4", "", `malformed error "oops"`},
		{"surrounding blanks are fine", "  {\"method\":\"m\"}\r", lineNotification, "", "m", ""},
		{"not JSON", `this is not json`, lineInvalid, "", "", ""},
		{"truncated JSON", `{"method":"m"`, lineInvalid, "", "", ""},
		{"an array is not a message", `[1,2]`, lineInvalid, "", "", ""},
		{"an object of neither shape", `{"hello":1}`, lineInvalid, "", "", ""},
		{"an id alone", `{"id":1}`, lineInvalid, "", "", ""},
		{"a method that is not a string", `{"method":5}`, lineInvalid, "", "", ""},
		{"an empty method", `{"method":""}`, lineInvalid, "", "", ""},
		{"an id that is an object", `{"id":{},"result":1}`, lineInvalid, "", "", ""},
		{"an empty line", ``, lineInvalid, "", "", ""},
	}
	for _, tt := range tests {
		l, err := decodeLine([]byte(tt.line))
		if l.kind != tt.kind || string(l.id) != tt.id || l.method != tt.method {
			t.Errorf("%s: decodeLine(%q) = kind %v id %s method %q, want %v %s %q", tt.name, tt.line, l.kind, l.id, l.method, tt.kind, tt.id, tt.method)
		}
		if (err != nil) != (tt.kind == lineInvalid) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if tt.errMsg != "" && (l.err == nil || l.err.Message != tt.errMsg) {
			t.Errorf("%s: rpc error = %v, want %q", tt.name, l.err, tt.errMsg)
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
		l, err := decodeLine(b)
		switch l.kind {
		case lineInvalid:
			if err == nil {
				t.Fatalf("%q: invalid without a reason", b)
			}
		case lineRequest:
			if err != nil || l.method == "" || !present(l.id) {
				t.Fatalf("%q: request %+v, %v", b, l, err)
			}
		case lineNotification:
			if err != nil || l.method == "" || l.id != nil {
				t.Fatalf("%q: notification %+v, %v", b, l, err)
			}
		case lineResponse:
			if err != nil || !present(l.id) || (l.err != nil && l.result != nil) {
				t.Fatalf("%q: response %+v, %v", b, l, err)
			}
		default:
			t.Fatalf("%q: kind %d", b, l.kind)
		}
	})
}

// peer is the far end of an rpcClient: it reads what the client writes and
// writes what a server would.
type peer struct {
	client *rpcClient
	lines  *bufio.Scanner // what the client wrote
	out    *os.File       // what the client reads
	h      *handlerLog
	done   chan struct{} // the client's reader ended
}

func newPeer(t *testing.T, timeout time.Duration) *peer {
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
		client: newRPCClient(toServerW, timeout, hclog.NewNullLogger()),
		lines:  bufio.NewScanner(toServerR),
		out:    fromServerW,
		h:      &handlerLog{changed: make(chan struct{})},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		p.client.readLoop(fromServerR, p.h)
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

func (h *handlerLog) notification(method string, _ json.RawMessage) { h.add("notification " + method) }
func (h *handlerLog) request(id json.RawMessage, method string, _ json.RawMessage) {
	h.add("request " + string(id) + " " + method)
}
func (h *handlerLog) invalid(text []byte, _ error) { h.add("invalid " + string(text)) }
func (h *handlerLog) idle()                        {}

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
		raw, err := p.client.call(context.Background(), "turn/start", map[string]any{"threadId": "t"}, nil)
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
	if err := p.client.reply(json.RawMessage("1"), map[string]string{"decision": "accept"}); err != nil {
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
		_, err := p.client.call(context.Background(), "turn/steer", nil, nil)
		errc <- err
	}()
	p.next(t)
	p.say(t, `{"id":1,"error":{"code":-32600,"message":"no active turn to steer"}}`)
	err := <-errc
	var re *rpcError
	if !errors.As(err, &re) || re.Code != -32600 || !noActiveTurn(err) {
		t.Fatalf("err = %v, want the rpcError", err)
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
	_, err := p.client.call(context.Background(), "initialize", nil, nil)
	if !errors.Is(err, errTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("call = %v after %v, want errTimeout after about 100ms", err, time.Since(start))
	}
	// A late answer goes nowhere and breaks nothing.
	p.say(t, `{"id":1,"result":{}}`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.client.call(ctx, "turn/interrupt", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("call with a cancelled ctx = %v", err)
	}
}

func TestRequestsFailAtOnceWhenOutputEnds(t *testing.T) {
	t.Parallel()
	p := newPeer(t, sdktest.WaitLong)
	errc := make(chan error, 1)
	go func() {
		_, err := p.client.call(context.Background(), "thread/start", nil, nil)
		errc <- err
	}()
	p.next(t)
	_ = p.out.Close()
	if err := <-errc; !errors.Is(err, errGone) {
		t.Fatalf("pending call = %v, want errGone", err)
	}
	<-p.done
	if _, err := p.client.call(context.Background(), "turn/start", nil, nil); !errors.Is(err, errGone) {
		t.Fatalf("call after the end = %v, want errGone at once", err)
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
				if err := p.client.notify("n", map[string]string{"text": big}); err != nil {
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
