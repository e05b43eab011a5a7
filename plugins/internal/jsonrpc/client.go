package jsonrpc

import (
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

// maxLineBytes bounds one line in memory. CLIs put whole command outputs
// and replayed histories in single lines, so it is generous.
const maxLineBytes = 64 << 20

// Errors of the client. They are wrapped with the peer's name and the
// method.
var (
	// ErrGone: the peer's output ended, so no answer will come.
	ErrGone = errors.New("closed its output")
	// ErrTimeout: the peer did not answer in time (or stopped reading its
	// input).
	ErrTimeout = errors.New("did not answer in time")
)

// Handler receives what the peer sends, on the reader goroutine and in
// wire order. Its methods must not block on the wire: answer a request
// from a goroutine of its own.
type Handler interface {
	// Notification handles a notification.
	Notification(method string, params json.RawMessage)
	// Request must see that the peer's request gets an answer (Reply or
	// ReplyError).
	Request(id json.RawMessage, method string, params json.RawMessage)
	// Invalid reports a line that is not usable JSON-RPC, or is too long.
	Invalid(text []byte, err error)
	// Idle is called when every line read so far has been handled, before
	// the reader waits for more: the moment to flush buffered output.
	Idle()
}

// Options configure a Client.
type Options struct {
	// Name names the peer in errors ("codex app-server", "the ACP agent").
	Name string
	// Version2 adds the "jsonrpc":"2.0" member to every message sent
	// (ACP requires it; codex's app-server omits it).
	Version2 bool
	// Timeout is the deadline of every Call (a context deadline that comes
	// first wins).
	Timeout time.Duration
	// Log receives what nobody else can act on (an answer nobody waits
	// for); nil discards it.
	Log hclog.Logger
}

// Client is our side of the wire: requests, notifications and answers to
// the peer's requests, written one whole line at a time, and the reader
// that matches answers to requests. Every method is safe for concurrent
// use.
type Client struct {
	w    io.Writer // the peer's stdin (a plugin.Process bounds each write)
	opts Options

	wmu sync.Mutex // one line at a time

	mu      sync.Mutex
	next    int64
	pending map[int64]*pendingCall
	gone    error // set when the output ended: requests fail at once
}

type pendingCall struct {
	done   chan struct{}
	result json.RawMessage
	err    error
	// onResult runs on the reader goroutine as soon as a successful answer
	// arrives, before any later line is handled.
	onResult func(json.RawMessage)
	// onAnswer, for Go, runs on the reader goroutine with the answer or
	// the client's failure.
	onAnswer func(json.RawMessage, error)
}

// NewClient returns a client that writes to w (the peer's stdin). Call
// ReadLoop with the peer's stdout to receive.
func NewClient(w io.Writer, opts Options) *Client {
	if opts.Name == "" {
		opts.Name = "the peer"
	}
	if opts.Log == nil {
		opts.Log = hclog.NewNullLogger()
	}
	return &Client{w: w, opts: opts, next: 1, pending: map[int64]*pendingCall{}}
}

// register reserves an id for a request.
func (c *Client) register(pc *pendingCall) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone != nil {
		return 0, c.gone
	}
	id := c.next
	c.next++
	c.pending[id] = pc
	return id, nil
}

// Call sends a request and waits for its answer, at most Options.Timeout
// (or until ctx ends). A JSON-RPC error comes back as *Error (errors.As).
// onResult, when not nil, runs on the reader goroutine as soon as a
// successful answer arrives, before any later line is handled: how a turn
// id becomes known before the turn's own notifications are read.
func (c *Client) Call(ctx context.Context, method string, params any, onResult func(json.RawMessage)) (json.RawMessage, error) {
	pc := &pendingCall{done: make(chan struct{}), onResult: onResult}
	id, err := c.register(pc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	start := time.Now()
	deadline := start.Add(c.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.write(c.request(id, method, params)); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-pc.done:
	case <-timer.C:
		if c.forget(id) {
			return nil, fmt.Errorf("%s: %s %w (waited %v)", method, c.opts.Name, ErrTimeout, deadline.Sub(start).Round(time.Millisecond))
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

// Go sends a request without a deadline and returns once it is written.
// done is called exactly once, on the reader goroutine in wire order (so
// after every line the peer sent before its answer), with the result or
// the error: a *Error, or ErrGone when the output ended first. It is not
// called when Go returns an error. For requests that last as long as the
// peer needs (an ACP session/prompt lasts a whole turn).
func (c *Client) Go(method string, params any, done func(result json.RawMessage, err error)) (int64, error) {
	pc := &pendingCall{done: make(chan struct{}), onAnswer: done}
	id, err := c.register(pc)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", method, err)
	}
	if err := c.write(c.request(id, method, params)); err != nil {
		c.forget(id)
		return 0, fmt.Errorf("%s: %w", method, err)
	}
	return id, nil
}

// envelope is every message the client sends: a request (ID and Method),
// a notification (Method only) or an answer (ID and Result or Error).
// JSONRPC is "2.0" with Options.Version2, else left out.
type envelope struct {
	JSONRPC string          `json:"jsonrpc,omitempty"`
	ID      any             `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  any             `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"` // an answer's, "null" included
	Error   *Error          `json:"error,omitempty"`
}

func (c *Client) envelope() envelope {
	if c.opts.Version2 {
		return envelope{JSONRPC: "2.0"}
	}
	return envelope{}
}

func (c *Client) request(id int64, method string, params any) envelope {
	e := c.envelope()
	e.ID, e.Method, e.Params = id, method, params
	return e
}

// forget drops a pending request; false means the reader already took it.
func (c *Client) forget(id int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	e := c.envelope()
	e.Method, e.Params = method, params
	return c.write(e)
}

// Reply answers a peer's request.
func (c *Client) Reply(id json.RawMessage, result any) error {
	raw, err := json.Marshal(result) // "null" for nil: an answer always has a result
	if err != nil {
		return err
	}
	e := c.envelope()
	e.ID, e.Result = id, raw
	return c.write(e)
}

// ReplyError answers a peer's request with a JSON-RPC error.
func (c *Client) ReplyError(id json.RawMessage, code int64, message string) error {
	e := c.envelope()
	e.ID, e.Error = id, &Error{Code: code, Message: message}
	return c.write(e)
}

// write sends one line. The peer's plugin.Process bounds the write, so a
// wedged peer (one that stopped reading its stdin) cannot block the
// caller forever.
func (c *Client) write(e envelope) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%s %w: its input is not being read", c.opts.Name, ErrTimeout)
		}
		return err
	}
	return nil
}

// ReadLoop reads the peer's output until it ends, handing each line to h
// or to the request waiting for it. When it returns, every request still
// waiting has failed with ErrGone and new requests fail at once.
func (c *Client) ReadLoop(r io.Reader, h Handler) {
	lines := plugin.NewLineReader(r, maxLineBytes)
	for {
		line, err := lines.Next()
		switch {
		case errors.Is(err, plugin.ErrLineTooLong):
			h.Invalid([]byte(line[:min(len(line), 200)]), fmt.Errorf("line longer than %d bytes, skipped", maxLineBytes))
			err = nil
		case strings.TrimSpace(line) != "":
			c.dispatch([]byte(line), h)
		}
		if err != nil {
			break
		}
		if lines.Buffered() == 0 {
			h.Idle()
		}
	}
	h.Idle()
	c.fail(fmt.Errorf("%s %w", c.opts.Name, ErrGone))
}

func (c *Client) dispatch(text []byte, h Handler) {
	l, err := DecodeLine(text)
	switch l.Kind {
	case Notification:
		h.Notification(l.Method, l.Params)
	case Request:
		h.Request(l.ID, l.Method, l.Params)
	case Response:
		if !c.resolve(l) {
			// Most likely the answer to a request that timed out: valid
			// output, nothing waits for it any more.
			c.opts.Log.Warn(c.opts.Name+" answered a request nobody waits for", "id", string(l.ID))
		}
	default:
		h.Invalid(text, err)
	}
}

// resolve hands a response to the request waiting for it.
func (c *Client) resolve(l Line) bool {
	id, err := strconv.ParseInt(string(l.ID), 10, 64)
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
	if l.Err != nil {
		pc.err = l.Err
	} else {
		pc.result = l.Result
		if pc.onResult != nil {
			pc.onResult(l.Result)
		}
	}
	if pc.onAnswer != nil {
		pc.onAnswer(pc.result, pc.err)
	}
	close(pc.done)
	return true
}

// fail ends every waiting request with err and refuses new ones.
func (c *Client) fail(err error) {
	c.mu.Lock()
	var answers []*pendingCall
	c.gone = err
	for id, pc := range c.pending {
		pc.err = err
		delete(c.pending, id)
		answers = append(answers, pc)
	}
	c.mu.Unlock()
	for _, pc := range answers {
		if pc.onAnswer != nil {
			pc.onAnswer(nil, err)
		}
		close(pc.done)
	}
}
