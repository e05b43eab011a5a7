package town

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MessageType is the "type" tag of a message.
type MessageType string

const (
	TypeTask           MessageType = "task"
	TypeQuery          MessageType = "query"
	TypeInformational  MessageType = "informational"
	TypeConfirmation   MessageType = "confirmation"
	TypeTaskAssign     MessageType = "task_assign"
	TypeTaskDone       MessageType = "task_done"
	TypeTaskFailed     MessageType = "task_failed"
	TypeStatusRequest  MessageType = "status_request"
	TypeStatusResponse MessageType = "status_response"
	TypePing           MessageType = "ping"
	TypePong           MessageType = "pong"
	TypeShutdown       MessageType = "shutdown"
	TypeCustom         MessageType = "custom"
)

// MessageTypes lists every type tt knows.
var MessageTypes = []MessageType{TypeTask, TypeQuery, TypeInformational, TypeConfirmation,
	TypeTaskAssign, TypeTaskDone, TypeTaskFailed, TypeStatusRequest, TypeStatusResponse,
	TypePing, TypePong, TypeShutdown, TypeCustom}

// Known reports whether tt knows the type (an unknown one fails to parse).
func (t MessageType) Known() bool {
	for _, k := range MessageTypes {
		if k == t {
			return true
		}
	}
	return false
}

// Priority is a message's priority; only the lowercase spelling parses.
type Priority string

const (
	PriorityLow    Priority = "low"
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
	PriorityUrgent Priority = "urgent"
)

func (p Priority) known() bool {
	return p == PriorityLow || p == PriorityNormal || p == PriorityHigh || p == PriorityUrgent
}

// Front reports whether Send puts the message at the front of the inbox
// (LPUSH) rather than the back: high and urgent priority.
func (p Priority) Front() bool { return p == PriorityHigh || p == PriorityUrgent }

// AckKind is the "type" of a confirmation's ack_type object.
type AckKind string

const (
	AckReceived     AckKind = "received"
	AckAcknowledged AckKind = "acknowledged"
	AckThanks       AckKind = "thanks"
	AckApproved     AckKind = "approved"
	AckRejected     AckKind = "rejected"
)

// Ack is a confirmation's ack_type; Reason is used by AckRejected only.
type Ack struct {
	Kind   AckKind
	Reason string
}

// ParseAckText maps `tt send --ack` text to an Ack: "rejected:<reason>" is
// rejected (reason trimmed); text starting with "received" or "approved" is
// that; text containing "thanks" or "thank you" is thanks; anything else is
// acknowledged. Matching ignores case and surrounding space.
func ParseAckText(text string) Ack {
	t := strings.TrimSpace(text)
	lower := strings.ToLower(t)
	switch {
	case strings.HasPrefix(lower, "rejected:"):
		return Ack{Kind: AckRejected, Reason: strings.TrimSpace(t[len("rejected:"):])}
	case strings.HasPrefix(lower, "received"):
		return Ack{Kind: AckReceived}
	case strings.HasPrefix(lower, "approved"):
		return Ack{Kind: AckApproved}
	case strings.Contains(lower, "thanks") || strings.Contains(lower, "thank you"):
		return Ack{Kind: AckThanks}
	default:
		return Ack{Kind: AckAcknowledged}
	}
}

// Message is one inbox element. Only the variant fields of Type
// are meaningful; the others are empty.
type Message struct {
	ID   string
	From string // the sender's id; the supervisor is SupervisorID
	To   string
	Type MessageType

	Description string  // task
	Question    string  // query
	Summary     string  // informational
	Ack         Ack     // confirmation
	TaskID      string  // task_assign, task_done, task_failed (any string, as in tt)
	Result      string  // task_done
	Error       string  // task_failed
	State       string  // status_response
	StatusTask  *string // status_response current_task; nil is null
	Kind        string  // custom
	Payload     string  // custom

	Priority      Priority
	CreatedAt     time.Time
	CorrelationID string // "" is null (tt always writes null)

	// Raw is the exact JSON this message was parsed from; empty for a
	// message built in Go. Requeue puts these bytes back unchanged.
	Raw string
}

// Marshal writes the message exactly as tt's serde does: compact, keys in
// the order id, from, to, type, <variant fields>, priority, created_at,
// correlation_id, serde_json's string escaping, created_at with "Z".
// It refuses a message tt could not parse back.
func (m *Message) Marshal() ([]byte, error) {
	id, err := ParseID(m.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: id: %v", ErrInvalidMessage, err)
	}
	from, err := ParseID(m.From)
	if err != nil {
		return nil, fmt.Errorf("%w: from: %v", ErrInvalidMessage, err)
	}
	to, err := ParseID(m.To)
	if err != nil {
		return nil, fmt.Errorf("%w: to: %v", ErrInvalidMessage, err)
	}
	if !m.Type.Known() {
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidMessage, m.Type)
	}
	if !m.Priority.known() {
		return nil, fmt.Errorf("%w: unknown priority %q", ErrInvalidMessage, m.Priority)
	}
	corr := ""
	if m.CorrelationID != "" {
		if corr, err = ParseID(m.CorrelationID); err != nil {
			return nil, fmt.Errorf("%w: correlation_id: %v", ErrInvalidMessage, err)
		}
	}
	if y := m.CreatedAt.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: created_at year %d out of range", ErrInvalidMessage, y)
	}

	b := make([]byte, 0, 256)
	b = append(b, '{')
	b = appendStringField(b, "id", id)
	b = appendStringField(b, "from", from)
	b = appendStringField(b, "to", to)
	b = appendStringField(b, "type", string(m.Type))
	switch m.Type {
	case TypeTask:
		b = appendStringField(b, "description", m.Description)
	case TypeQuery:
		b = appendStringField(b, "question", m.Question)
	case TypeInformational:
		b = appendStringField(b, "summary", m.Summary)
	case TypeConfirmation:
		switch m.Ack.Kind {
		case AckReceived, AckAcknowledged, AckThanks, AckApproved:
			b = appendFieldName(b, "ack_type")
			b = append(b, '{')
			b = appendStringField(b, "type", string(m.Ack.Kind))
			b = append(b, '}')
		case AckRejected:
			b = appendFieldName(b, "ack_type")
			b = append(b, '{')
			b = appendStringField(b, "type", string(m.Ack.Kind))
			b = appendStringField(b, "reason", m.Ack.Reason)
			b = append(b, '}')
		default:
			return nil, fmt.Errorf("%w: unknown ack type %q", ErrInvalidMessage, m.Ack.Kind)
		}
	case TypeTaskAssign:
		b = appendStringField(b, "task_id", m.TaskID)
	case TypeTaskDone:
		b = appendStringField(b, "task_id", m.TaskID)
		b = appendStringField(b, "result", m.Result)
	case TypeTaskFailed:
		b = appendStringField(b, "task_id", m.TaskID)
		b = appendStringField(b, "error", m.Error)
	case TypeStatusResponse:
		b = appendStringField(b, "state", m.State)
		b = appendFieldName(b, "current_task")
		if m.StatusTask == nil {
			b = append(b, "null"...)
		} else {
			b = appendJSONString(b, *m.StatusTask)
		}
	case TypeCustom:
		b = appendStringField(b, "kind", m.Kind)
		b = appendStringField(b, "payload", m.Payload)
	}
	b = appendStringField(b, "priority", string(m.Priority))
	b = appendStringField(b, "created_at", FormatJSONTime(m.CreatedAt))
	b = appendFieldName(b, "correlation_id")
	if corr == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, corr)
	}
	return append(b, '}'), nil
}

// MarshalJSON makes Message usable with encoding/json (same bytes as Marshal).
func (m Message) MarshalJSON() ([]byte, error) { return m.Marshal() }

// ParseMessage reads one inbox element as strictly as tt does: id, from, to
// (UUIDs), a known type with its required fields, a lowercase priority and
// created_at are required; correlation_id may be missing or null; unknown
// fields are ignored; ack_type must be an object. Ids are returned in
// canonical form and Raw keeps the input. It never panics.
func ParseMessage(raw string) (*Message, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidMessage)
	}
	p := objReader{obj: obj}
	m := &Message{Raw: raw}
	m.ID = p.id("id")
	m.From = p.id("from")
	m.To = p.id("to")
	m.Type = MessageType(p.str("type"))
	if p.err == nil && !m.Type.Known() {
		p.fail("unknown type %q", m.Type)
	}
	switch m.Type {
	case TypeTask:
		m.Description = p.str("description")
	case TypeQuery:
		m.Question = p.str("question")
	case TypeInformational:
		m.Summary = p.str("summary")
	case TypeConfirmation:
		m.Ack = p.ack("ack_type")
	case TypeTaskAssign:
		m.TaskID = p.str("task_id")
	case TypeTaskDone:
		m.TaskID = p.str("task_id")
		m.Result = p.str("result")
	case TypeTaskFailed:
		m.TaskID = p.str("task_id")
		m.Error = p.str("error")
	case TypeStatusResponse:
		m.State = p.str("state")
		m.StatusTask = p.optStr("current_task")
	case TypeCustom:
		m.Kind = p.str("kind")
		m.Payload = p.str("payload")
	}
	m.Priority = Priority(p.str("priority"))
	if p.err == nil && !m.Priority.known() {
		p.fail("unknown priority %q (only low, normal, high, urgent)", m.Priority)
	}
	if s := p.str("created_at"); p.err == nil {
		t, err := ParseTime(s)
		if err != nil {
			p.fail("created_at: %v", err)
		}
		m.CreatedAt = t
	}
	if c := p.optStr("correlation_id"); c != nil && p.err == nil {
		id, err := ParseID(*c)
		if err != nil {
			p.fail("correlation_id: %v", err)
		}
		m.CorrelationID = id
	}
	if p.err != nil {
		return nil, p.err
	}
	return m, nil
}

// objReader reads fields of a JSON object, keeping the first error, which
// wraps kind (ErrInvalidMessage when nil).
type objReader struct {
	obj  map[string]json.RawMessage
	kind error
	err  error
}

func (p *objReader) fail(format string, args ...any) {
	if p.err == nil {
		kind := p.kind
		if kind == nil {
			kind = ErrInvalidMessage
		}
		p.err = fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
	}
}

func (p *objReader) str(name string) string {
	if p.err != nil {
		return ""
	}
	v, ok := p.obj[name]
	if !ok {
		p.fail("missing field %q", name)
		return ""
	}
	var s *string
	if err := json.Unmarshal(v, &s); err != nil || s == nil {
		p.fail("field %q must be a string", name)
		return ""
	}
	return *s
}

// optStr reads an Option<String>: missing or null is nil.
func (p *objReader) optStr(name string) *string {
	if p.err != nil {
		return nil
	}
	v, ok := p.obj[name]
	if !ok {
		return nil
	}
	var s *string
	if err := json.Unmarshal(v, &s); err != nil {
		p.fail("field %q must be a string or null", name)
		return nil
	}
	return s
}

func (p *objReader) id(name string) string {
	s := p.str(name)
	if p.err != nil {
		return ""
	}
	id, err := ParseID(s)
	if err != nil {
		p.fail("field %q: %v", name, err)
		return ""
	}
	return id
}

func (p *objReader) ack(name string) Ack {
	if p.err != nil {
		return Ack{}
	}
	v, ok := p.obj[name]
	if !ok {
		p.fail("missing field %q", name)
		return Ack{}
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(v, &inner); err != nil || inner == nil {
		p.fail("field %q must be an object like {\"type\":\"received\"}", name)
		return Ack{}
	}
	q := objReader{obj: inner, kind: p.kind}
	a := Ack{Kind: AckKind(q.str("type"))}
	switch a.Kind {
	case AckReceived, AckAcknowledged, AckThanks, AckApproved:
	case AckRejected:
		a.Reason = q.str("reason")
	default:
		if q.err == nil {
			q.fail("unknown ack type %q", a.Kind)
		}
	}
	if q.err != nil {
		p.err = fmt.Errorf("%s: %w", name, q.err)
	}
	return a
}

// newMessage fills what every constructor shares: a fresh id, normal
// priority (every message tt creates is normal) and the creation time.
func newMessage(from, to string, t MessageType) *Message {
	return &Message{ID: NewID(), From: canonicalOr(from), To: canonicalOr(to), Type: t,
		Priority: PriorityNormal, CreatedAt: time.Now().UTC()}
}

// NewTask is `tt send X "msg"` (the default kind).
func NewTask(from, to, description string) *Message {
	m := newMessage(from, to, TypeTask)
	m.Description = description
	return m
}

// NewQuery is `tt send --query`.
func NewQuery(from, to, question string) *Message {
	m := newMessage(from, to, TypeQuery)
	m.Question = question
	return m
}

// NewInfo is `tt send --info`.
func NewInfo(from, to, summary string) *Message {
	m := newMessage(from, to, TypeInformational)
	m.Summary = summary
	return m
}

// NewAck is `tt send --ack text`, mapping text with ParseAckText.
func NewAck(from, to, text string) *Message { return NewConfirmation(from, to, ParseAckText(text)) }

// NewConfirmation is a confirmation with an explicit ack.
func NewConfirmation(from, to string, ack Ack) *Message {
	m := newMessage(from, to, TypeConfirmation)
	m.Ack = ack
	return m
}

// NewTaskAssign tells an agent that a task was assigned to it.
func NewTaskAssign(from, to, taskID string) *Message {
	m := newMessage(from, to, TypeTaskAssign)
	m.TaskID = canonicalOr(taskID)
	return m
}

// NewTaskDone reports a finished task.
func NewTaskDone(from, to, taskID, result string) *Message {
	m := newMessage(from, to, TypeTaskDone)
	m.TaskID, m.Result = canonicalOr(taskID), result
	return m
}

// NewTaskFailed reports a failed task.
func NewTaskFailed(from, to, taskID, errText string) *Message {
	m := newMessage(from, to, TypeTaskFailed)
	m.TaskID, m.Error = canonicalOr(taskID), errText
	return m
}

// NewStatusRequest asks an agent for its status.
func NewStatusRequest(from, to string) *Message { return newMessage(from, to, TypeStatusRequest) }

// NewStatusResponse answers a status request; currentTask may be nil.
func NewStatusResponse(from, to, state string, currentTask *string) *Message {
	m := newMessage(from, to, TypeStatusResponse)
	m.State, m.StatusTask = state, currentTask
	return m
}

// NewPing, NewPong and NewShutdown build the unit variants.
func NewPing(from, to string) *Message     { return newMessage(from, to, TypePing) }
func NewPong(from, to string) *Message     { return newMessage(from, to, TypePong) }
func NewShutdown(from, to string) *Message { return newMessage(from, to, TypeShutdown) }

// NewCustom builds a custom message; see Classify for how it is handled.
func NewCustom(from, to, kind, payload string) *Message {
	m := newMessage(from, to, TypeCustom)
	m.Kind, m.Payload = kind, payload
	return m
}
