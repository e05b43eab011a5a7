// Package jsonrpc is the line-delimited JSON-RPC client the built-in
// backend plugins share: one JSON object per line on a CLI's stdin and
// stdout, with two id spaces (ours and the CLI's, which overlap: both may
// number their first request 0 or 1).
//
// Two wires use it:
//
//   - `codex app-server --listen stdio://` (plugins/codex), which speaks
//     JSON-RPC 2.0 without the "jsonrpc" member;
//   - the Agent Client Protocol (plugins/acp), which is JSON-RPC 2.0 with
//     it ("jsonrpc":"2.0" on every message; Options.Version2).
//
// Everything read from the wire goes through DecodeLine, one fuzzed
// function that decides what a line is and never panics. A Client sends
// requests with deadlines (Call), requests that last as long as they need
// and are answered on the reader goroutine in wire order (Go: an ACP
// session/prompt lasts a whole turn), notifications, and answers to the
// peer's requests; ReadLoop hands everything else to a Handler, in wire
// order, on one goroutine. Lines are bounded (64 MiB): a
// longer one is reported and skipped, never buffered without bound.
package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is what DecodeLine made of a line.
type Kind int

const (
	// Invalid: not JSON, or none of the shapes below.
	Invalid Kind = iota
	// Request: a method and an id; the peer asks us and waits for an
	// answer.
	Request
	// Response: an id and a result or an error; the answer to one of our
	// requests.
	Response
	// Notification: a method without an id.
	Notification
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Response:
		return "response"
	case Notification:
		return "notification"
	}
	return "invalid"
}

// Standard JSON-RPC error codes a client answers the peer's requests with.
const (
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
)

// Error is a JSON-RPC error object, as the peer sent it.
type Error struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("JSON-RPC error %d", e.Code)
	}
	return e.Message
}

// Line is one decoded line of the wire.
type Line struct {
	Kind Kind
	// ID is the request's or response's id, a JSON number or string as
	// sent; nil for notifications.
	ID json.RawMessage
	// Method is set for requests and notifications.
	Method string
	// Params is set for requests and notifications, as sent (may be nil).
	Params json.RawMessage
	// Result is a successful response's result (may be the JSON null).
	Result json.RawMessage
	// Err is an error response's error.
	Err *Error
}

// DecodeLine classifies one line. It never panics; a line it cannot use
// comes back as Invalid with an error saying why. The "jsonrpc" member is
// neither required nor checked, so one decoder serves both wires.
func DecodeLine(b []byte) (Line, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Line{}, errors.New("not a JSON object")
	}
	var w struct {
		ID     json.RawMessage `json:"id"`
		Method json.RawMessage `json:"method"`
		Params json.RawMessage `json:"params"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return Line{}, fmt.Errorf("not JSON: %v", err)
	}
	hasID := Present(w.ID)
	if hasID && w.ID[0] != '"' && w.ID[0] != '-' && (w.ID[0] < '0' || w.ID[0] > '9') {
		return Line{}, fmt.Errorf("id %.40s is neither a number nor a string", w.ID)
	}
	l := Line{ID: w.ID, Params: w.Params}
	if Present(w.Method) {
		if err := json.Unmarshal(w.Method, &l.Method); err != nil || l.Method == "" {
			return Line{}, fmt.Errorf("method %.40s is not a non-empty string", w.Method)
		}
		if hasID {
			l.Kind = Request
		} else {
			l.Kind, l.ID = Notification, nil
		}
		return l, nil
	}
	if !hasID || (w.Result == nil && w.Error == nil) {
		return Line{}, errors.New("neither a request, a response nor a notification")
	}
	l.Kind, l.Params = Response, nil
	if Present(w.Error) {
		l.Err = &Error{}
		if err := json.Unmarshal(w.Error, l.Err); err != nil {
			// Still an answer: fail the request with what was sent rather
			// than leave it waiting.
			l.Err = &Error{Message: fmt.Sprintf("malformed error %.200s", w.Error)}
		}
		return l, nil
	}
	l.Result = w.Result
	return l, nil
}

// Present reports whether a member was sent with a value other than null.
func Present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// IDString renders a JSON-RPC id for people: a string without its quotes,
// a number as it is.
func IDString(id json.RawMessage) string {
	var s string
	if json.Unmarshal(id, &s) == nil {
		return s
	}
	return string(id)
}
