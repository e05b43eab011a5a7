package town

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventType is the snake_case event_type of a town event.
type EventType string

const (
	EventAgentStateChanged EventType = "agent_state_changed"
	EventAgentSpawned      EventType = "agent_spawned"
	EventAgentStopped      EventType = "agent_stopped"
	EventAgentInterrupted  EventType = "agent_interrupted"
	EventAgentResumed      EventType = "agent_resumed"
	EventAgentCompleted    EventType = "agent_completed"
	EventAgentFailed       EventType = "agent_failed"

	// The persistent-runtime events; tt's main branch does not know them
	// and skips them when reading.
	EventAgentTurnStarted     EventType = "agent_turn_started"
	EventAgentTurnCompleted   EventType = "agent_turn_completed"
	EventAgentAwaitingInput   EventType = "agent_awaiting_input"
	EventAgentToolCall        EventType = "agent_tool_call"
	EventAgentAssistantDelta  EventType = "agent_assistant_delta"
	EventAgentRuntimeError    EventType = "agent_runtime_error"
	EventTaskAssigned         EventType = "task_assigned"
	EventTaskCompleted        EventType = "task_completed"
	EventTaskFailed           EventType = "task_failed"
	EventTaskDelegated        EventType = "task_delegated"
	EventReviewerHandoff      EventType = "reviewer_handoff"
	EventReviewerApproval     EventType = "reviewer_approval"
	EventConductorEscalation  EventType = "conductor_escalation"
	EventMissionStateChanged  EventType = "mission_state_changed"
	EventMissionWorkPromoted  EventType = "mission_work_promoted"
	EventMissionWorkAssigned  EventType = "mission_work_assigned"
	EventMissionWorkCompleted EventType = "mission_work_completed"
	EventMissionWorkBlocked   EventType = "mission_work_blocked"
	EventMissionHelpNeeded    EventType = "mission_help_needed"
	EventMissionWatchTrigger  EventType = "mission_watch_triggered"
	EventMissionEvent         EventType = "mission_event"
)

// EventTypes lists every type tt knows; an entry of any other type is
// skipped by every tt reader, so Emit refuses it.
var EventTypes = []EventType{
	EventAgentStateChanged, EventAgentSpawned, EventAgentStopped, EventAgentInterrupted,
	EventAgentResumed, EventAgentCompleted, EventAgentFailed,
	EventAgentTurnStarted, EventAgentTurnCompleted, EventAgentAwaitingInput,
	EventAgentToolCall, EventAgentAssistantDelta, EventAgentRuntimeError,
	EventTaskAssigned, EventTaskCompleted, EventTaskFailed, EventTaskDelegated,
	EventReviewerHandoff, EventReviewerApproval, EventConductorEscalation,
	EventMissionStateChanged, EventMissionWorkPromoted, EventMissionWorkAssigned,
	EventMissionWorkCompleted, EventMissionWorkBlocked, EventMissionHelpNeeded,
	EventMissionWatchTrigger, EventMissionEvent,
}

// Known reports whether tt knows the type.
func (t EventType) Known() bool {
	for _, k := range EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

// Stream lengths tt trims to (approximately).
const (
	townEventsMax    = 1000
	agentEventsMax   = 100
	missionEventsMax = 500
)

// TownEvent is the JSON in the data field of an event stream entry
// . Optional fields are omitted when empty. OldState and NewState
// use the Debug spelling ("Idle"; AgentState.Debug).
//
// tthost-specific detail rides in Scope (a string tt shows as is) and in
// Extra: more top-level JSON fields, written after tt's own in key order
// (e.g. {"tthost": {...}}). tt's reader ignores unknown fields, so tt still
// reads the event. Extra may not reuse one of tt's field names.
type TownEvent struct {
	Type          EventType
	AgentID       string
	TaskID        string
	MissionID     string
	OldState      string
	NewState      string
	Message       string
	Timestamp     time.Time // zero: Emit uses now
	ParentAgentID string
	ChildAgentID  string
	Scope         string
	SpawnMode     SpawnMode
	// Extra holds additional fields; values are marshalled with
	// encoding/json (HTML characters unescaped). ParseEvent fills it with
	// json.RawMessage values for every field tt does not define.
	Extra map[string]any
}

// NewEvent returns an event of type typ with message; Emit stamps the time.
func NewEvent(typ EventType, message string) TownEvent {
	return TownEvent{Type: typ, Message: message}
}

// eventFields are tt's field names, in its order.
var eventFields = []string{"event_type", "agent_id", "task_id", "mission_id", "old_state", "new_state",
	"message", "timestamp", "parent_agent_id", "child_agent_id", "scope", "spawn_mode"}

// Marshal writes the event in tt's field order with serde's escaping and a
// "Z" timestamp.
func (e *TownEvent) Marshal() ([]byte, error) {
	if !e.Type.Known() {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, e.Type)
	}
	b := make([]byte, 0, 192)
	b = append(b, '{')
	b = appendStringField(b, "event_type", string(e.Type))
	opt := func(name, v string) {
		if v != "" {
			b = appendStringField(b, name, v)
		}
	}
	opt("agent_id", e.AgentID)
	opt("task_id", e.TaskID)
	opt("mission_id", e.MissionID)
	opt("old_state", e.OldState)
	opt("new_state", e.NewState)
	b = appendStringField(b, "message", e.Message)
	b = appendStringField(b, "timestamp", FormatJSONTime(e.Timestamp))
	opt("parent_agent_id", e.ParentAgentID)
	opt("child_agent_id", e.ChildAgentID)
	opt("scope", e.Scope)
	opt("spawn_mode", string(e.SpawnMode))
	if len(e.Extra) > 0 {
		names := make([]string, 0, len(e.Extra))
		for n := range e.Extra {
			if contains(eventFields, n) {
				return nil, fmt.Errorf("event extra field %q is one of tt's fields", n)
			}
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(e.Extra[n]); err != nil {
				return nil, fmt.Errorf("event extra field %q: %w", n, err)
			}
			b = appendFieldName(b, n)
			b = append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
		}
	}
	return append(b, '}'), nil
}

// ParseEvent reads the data field of an entry like tt does: a known
// event_type, message and timestamp are required. Fields tt does not
// define are kept in Extra.
func ParseEvent(data string) (*TownEvent, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidEvent)
	}
	p := objReader{obj: obj, kind: ErrInvalidEvent}
	e := &TownEvent{Type: EventType(p.str("event_type"))}
	if p.err == nil && !e.Type.Known() {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, e.Type)
	}
	opt := func(name string) string {
		if v := p.optStr(name); v != nil {
			return *v
		}
		return ""
	}
	e.AgentID = opt("agent_id")
	e.TaskID = opt("task_id")
	e.MissionID = opt("mission_id")
	e.OldState = opt("old_state")
	e.NewState = opt("new_state")
	e.Message = p.str("message")
	if ts := p.str("timestamp"); p.err == nil {
		t, err := ParseTime(ts)
		if err != nil {
			return nil, fmt.Errorf("%w: timestamp: %v", ErrInvalidEvent, err)
		}
		e.Timestamp = t
	}
	e.ParentAgentID = opt("parent_agent_id")
	e.ChildAgentID = opt("child_agent_id")
	e.Scope = opt("scope")
	e.SpawnMode = SpawnMode(opt("spawn_mode"))
	if p.err != nil {
		return nil, p.err
	}
	for n, raw := range obj {
		if !contains(eventFields, n) {
			if e.Extra == nil {
				e.Extra = map[string]any{}
			}
			e.Extra[n] = raw
		}
	}
	return e, nil
}

// Emit appends the event to the town stream and, as tt does, to the
// agent's stream, the parent's and the child's (each once), and the
// mission's; all in one pipelined round trip, each XADD trimmed with
// MAXLEN ~. Unlike tt, errors are returned: the caller decides whether an
// event is worth failing for.
func (s *Store) Emit(ctx context.Context, ev TownEvent) error {
	return s.emit(ctx, ev, nil)
}

// emit writes the event; with also set, it adds also's writes and runs
// everything as one MULTI.
func (s *Store) emit(ctx context.Context, ev TownEvent, also func(redis.Pipeliner)) error {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = s.nowUTC()
	}
	data, err := ev.Marshal()
	if err != nil {
		return err
	}
	values := []any{"event_type", string(ev.Type), "data", string(data)}
	k := s.keys
	type target struct {
		key string
		max int64
	}
	targets := []target{{k.Events(), townEventsMax}}
	seen := map[string]bool{}
	for _, id := range []string{ev.AgentID, ev.ParentAgentID, ev.ChildAgentID} {
		if id != "" && !seen[canonicalOr(id)] {
			seen[canonicalOr(id)] = true
			targets = append(targets, target{k.EventsAgent(id), agentEventsMax})
		}
	}
	if ev.MissionID != "" {
		targets = append(targets, target{k.EventsMission(ev.MissionID), missionEventsMax})
	}
	write := func(p redis.Pipeliner) error {
		for _, t := range targets {
			p.XAdd(ctx, &redis.XAddArgs{Stream: t.key, MaxLen: t.max, Approx: true, ID: "*", Values: values})
		}
		if also != nil {
			also(p)
		}
		return nil
	}
	if also != nil {
		_, err = s.rdb.TxPipelined(ctx, write)
	} else {
		_, err = s.rdb.Pipelined(ctx, write)
	}
	if err != nil {
		return fmt.Errorf("emit %s: %w", ev.Type, err)
	}
	return nil
}

// EventEntry is one stream entry. Event is nil when the entry has no data
// field or it does not parse (tt skips such entries silently); Err says why.
type EventEntry struct {
	ID    string
	Type  string // the entry's event_type field
	Event *TownEvent
	Err   error
}

func toEventEntries(msgs []redis.XMessage) []EventEntry {
	out := make([]EventEntry, len(msgs))
	for i, m := range msgs {
		out[i].ID = m.ID
		out[i].Type, _ = m.Values["event_type"].(string)
		data, ok := m.Values["data"].(string)
		if !ok {
			out[i].Err = fmt.Errorf("entry %s has no data field", m.ID)
			continue
		}
		out[i].Event, out[i].Err = ParseEvent(data)
	}
	return out
}

// ReadEvents returns up to count entries of stream after afterID, which is
// exclusive ("(" prefix) so a follower never sees an entry twice (tt's
// XRANGE from the last id is inclusive and repeats it). afterID "" reads
// from the beginning; count <= 0 means no limit.
func (s *Store) ReadEvents(ctx context.Context, stream, afterID string, count int64) ([]EventEntry, error) {
	start := "-"
	if afterID != "" {
		start = "(" + afterID
	}
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = s.rdb.XRangeN(ctx, stream, start, "+", count).Result()
	} else {
		msgs, err = s.rdb.XRange(ctx, stream, start, "+").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("read events %s: %w", stream, err)
	}
	return toEventEntries(msgs), nil
}

// LastEventID is the id of the newest entry of stream, "0-0" when empty.
func (s *Store) LastEventID(ctx context.Context, stream string) (string, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("last event of %s: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// followBlock is how long one XREAD blocks; it bounds how late FollowEvents
// notices that ctx ended (go-redis cannot cancel a blocked read).
const followBlock = time.Second

// FollowEvents calls fn for every entry of stream after afterID ("" or "0"
// from the beginning, "$" from now), in order, blocking for new ones with
// XREAD BLOCK, until ctx ends (it then returns ctx.Err()) or fn fails.
func (s *Store) FollowEvents(ctx context.Context, stream, afterID string, fn func(EventEntry) error) error {
	last := afterID
	switch last {
	case "":
		last = "0-0"
	case "$":
		// Resolve "$" once: repeating XREAD with "$" would miss entries
		// added between two calls.
		id, err := s.LastEventID(ctx, stream)
		if err != nil {
			return err
		}
		last = id
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Block: followBlock, Count: 100}).Result()
		if err != nil {
			if isNil(err) {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow events %s: %w", stream, err)
		}
		for _, st := range res {
			for _, e := range toEventEntries(st.Messages) {
				last = e.ID
				if err := fn(e); err != nil {
					return err
				}
			}
		}
	}
}
