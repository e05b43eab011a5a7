package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk/plugin"
)

// The wire of `codex app-server --listen stdio://`: JSON-RPC 2.0 without the
// "jsonrpc" member, one JSON object per line, and two id spaces (ours and the
// server's, which overlap). Everything that reads the wire goes through
// decodeLine, so one fuzzed function decides what a line is.

// lineKind is what decodeLine made of a line.
type lineKind int

const (
	lineInvalid      lineKind = iota // not JSON, or none of the shapes below
	lineRequest                      // method and id: the server asks us and waits for an answer
	lineResponse                     // id and result or error: the answer to one of our requests
	lineNotification                 // method without id
)

func (k lineKind) String() string {
	switch k {
	case lineRequest:
		return "request"
	case lineResponse:
		return "response"
	case lineNotification:
		return "notification"
	}
	return "invalid"
}

// maxLineBytes bounds one line in memory. Codex puts whole command outputs
// and resumed histories in single lines, so it is generous; a longer line is
// reported and skipped rather than growing without bound.
const maxLineBytes = 64 << 20

// rpcError is a JSON-RPC error object. Codex reports every error with code
// -32600, so callers look at Message.
type rpcError struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *rpcError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("JSON-RPC error %d", e.Code)
	}
	return e.Message
}

// line is one decoded line of the wire.
type line struct {
	kind   lineKind
	id     json.RawMessage // requests and responses: a JSON number or string, as sent
	method string          // requests and notifications
	params json.RawMessage
	result json.RawMessage // responses without error
	err    *rpcError       // responses with error
}

// decodeLine classifies one line. It never panics; a line it cannot use
// comes back as lineInvalid with an error saying why.
func decodeLine(b []byte) (line, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return line{}, errors.New("not a JSON object")
	}
	var w struct {
		ID     json.RawMessage `json:"id"`
		Method json.RawMessage `json:"method"`
		Params json.RawMessage `json:"params"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return line{}, fmt.Errorf("not JSON: %v", err)
	}
	hasID := present(w.ID)
	if hasID && w.ID[0] != '"' && w.ID[0] != '-' && (w.ID[0] < '0' || w.ID[0] > '9') {
		return line{}, fmt.Errorf("id %.40s is neither a number nor a string", w.ID)
	}
	l := line{id: w.ID, params: w.Params}
	if present(w.Method) {
		if err := json.Unmarshal(w.Method, &l.method); err != nil || l.method == "" {
			return line{}, fmt.Errorf("method %.40s is not a non-empty string", w.Method)
		}
		if hasID {
			l.kind = lineRequest
		} else {
			l.kind, l.id = lineNotification, nil
		}
		return l, nil
	}
	if !hasID || (w.Result == nil && w.Error == nil) {
		return line{}, errors.New("neither a request, a response nor a notification")
	}
	l.kind, l.params = lineResponse, nil
	if present(w.Error) {
		l.err = &rpcError{}
		if err := json.Unmarshal(w.Error, l.err); err != nil {
			// Still an answer: fail the request with what was sent rather
			// than leave it waiting.
			l.err = &rpcError{Message: fmt.Sprintf("malformed error %.200s", w.Error)}
		}
		return l, nil
	}
	l.result = w.Result
	return l, nil
}

// present reports whether a member was sent with a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// Errors of the client.
var (
	// errGone: the app-server's stdout ended, so no answer will come.
	errGone = errors.New("codex app-server closed its output")
	// errTimeout: the app-server did not answer in time.
	errTimeout = errors.New("codex app-server did not answer in time")
)

// wireHandler receives what the server sends, on the reader goroutine and in
// wire order.
type wireHandler interface {
	// notification handles a notification.
	notification(method string, params json.RawMessage)
	// request must see that the server request gets an answer.
	request(id json.RawMessage, method string, params json.RawMessage)
	// invalid reports a line that is not usable JSON-RPC.
	invalid(text []byte, err error)
	// idle is called when every line read so far has been handled, before
	// the reader waits for more: the moment to flush buffered output.
	idle()
}

// rpcClient is our side of the wire: requests with deadlines, notifications
// and answers to server requests, written one line at a time.
type rpcClient struct {
	w       io.WriteCloser // the app-server's stdin (its plugin.Process bounds each write)
	timeout time.Duration  // deadline of every request
	log     hclog.Logger

	wmu sync.Mutex // one line at a time

	mu      sync.Mutex
	next    int64
	pending map[int64]*pendingCall
	gone    error // set when stdout ended: requests fail at once
}

type pendingCall struct {
	done   chan struct{}
	result json.RawMessage
	err    error
	// onResult runs on the reader goroutine as soon as a successful answer
	// arrives, before any later line is handled: how a turn id becomes
	// known before the turn's own notifications are read.
	onResult func(json.RawMessage)
}

func newRPCClient(w io.WriteCloser, timeout time.Duration, log hclog.Logger) *rpcClient {
	return &rpcClient{w: w, timeout: timeout, log: log, next: 1, pending: map[int64]*pendingCall{}}
}

// call sends a request and waits for its answer, at most c.timeout (or
// until ctx ends). A JSON-RPC error comes back as *rpcError.
func (c *rpcClient) call(ctx context.Context, method string, params any, onResult func(json.RawMessage)) (json.RawMessage, error) {
	c.mu.Lock()
	if c.gone != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, c.gone)
	}
	id := c.next
	c.next++
	pc := &pendingCall{done: make(chan struct{}), onResult: onResult}
	c.pending[id] = pc
	c.mu.Unlock()

	start := time.Now()
	deadline := start.Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	msg := struct {
		ID     int64  `json:"id"`
		Method string `json:"method"`
		Params any    `json:"params,omitempty"`
	}{id, method, params}
	if err := c.write(msg); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-pc.done:
	case <-timer.C:
		if c.forget(id) {
			return nil, fmt.Errorf("%s: %w (waited %v)", method, errTimeout, deadline.Sub(start).Round(time.Millisecond))
		}
		<-pc.done // the answer arrived as we gave up: take it
	case <-ctx.Done():
		if c.forget(id) {
			return nil, fmt.Errorf("%s: %w", method, ctx.Err())
		}
		<-pc.done
	}
	if pc.err != nil {
		return nil, fmt.Errorf("%s: %w", method, pc.err)
	}
	return pc.result, nil
}

// forget drops a pending request; false means the reader already took it.
func (c *rpcClient) forget(id int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// notify sends a notification.
func (c *rpcClient) notify(method string, params any) error {
	msg := struct {
		Method string `json:"method"`
		Params any    `json:"params,omitempty"`
	}{method, params}
	return c.write(msg)
}

// reply answers a server request.
func (c *rpcClient) reply(id json.RawMessage, result any) error {
	msg := struct {
		ID     json.RawMessage `json:"id"`
		Result any             `json:"result"`
	}{id, result}
	return c.write(msg)
}

// replyError answers a server request with a JSON-RPC error.
func (c *rpcClient) replyError(id json.RawMessage, code int64, message string) error {
	msg := struct {
		ID    json.RawMessage `json:"id"`
		Error rpcError        `json:"error"`
	}{id, rpcError{Code: code, Message: message}}
	return c.write(msg)
}

// write sends one line. The app-server's plugin.Process bounds the write
// (request_timeout_ms), so a wedged app-server (one that stopped reading
// its stdin) cannot block the caller forever.
func (c *rpcClient) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: its input is not being read", errTimeout)
		}
		return err
	}
	return nil
}

// closeInput closes the app-server's stdin, which asks it to exit. It does
// not wait for a write in progress (which fails instead).
func (c *rpcClient) closeInput() { _ = c.w.Close() }

// readLoop reads the app-server's stdout until it ends, handing each line
// to h or to the request waiting for it. When it returns, every request
// still waiting has failed with errGone and new requests fail at once.
func (c *rpcClient) readLoop(r io.Reader, h wireHandler) {
	lines := plugin.NewLineReader(r, maxLineBytes)
	for {
		line, err := lines.Next()
		switch {
		case errors.Is(err, plugin.ErrLineTooLong):
			h.invalid([]byte(line[:min(len(line), 200)]), fmt.Errorf("line longer than %d bytes, skipped", maxLineBytes))
			err = nil
		case strings.TrimSpace(line) != "":
			c.dispatch([]byte(line), h)
		}
		if err != nil {
			break
		}
		if lines.Buffered() == 0 {
			h.idle()
		}
	}
	h.idle()
	c.fail(errGone)
}

func (c *rpcClient) dispatch(text []byte, h wireHandler) {
	l, err := decodeLine(text)
	switch l.kind {
	case lineNotification:
		h.notification(l.method, l.params)
	case lineRequest:
		h.request(l.id, l.method, l.params)
	case lineResponse:
		if !c.resolve(l) {
			// Most likely the answer to a request that timed out: valid
			// output, nothing waits for it any more.
			c.log.Warn("codex app-server answered a request nobody waits for", "id", string(l.id))
		}
	default:
		h.invalid(text, err)
	}
}

// resolve hands a response to the request waiting for it.
func (c *rpcClient) resolve(l line) bool {
	id, err := strconv.ParseInt(string(l.id), 10, 64)
	if err != nil {
		return false
	}
	c.mu.Lock()
	pc, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if !ok {
		return false
	}
	if l.err != nil {
		pc.err = l.err
	} else {
		pc.result = l.result
		if pc.onResult != nil {
			pc.onResult(l.result)
		}
	}
	close(pc.done)
	return true
}

// fail ends every waiting request with err and refuses new ones.
func (c *rpcClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = err
	for id, pc := range c.pending {
		pc.err = err
		close(pc.done)
		delete(c.pending, id)
	}
}
