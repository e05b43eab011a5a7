package agentloop

import (
	"context"
	"strings"
	"time"

	"github.com/tthost/tthost/host/prompt"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// detail is tthost's structured addition to a town event. It rides in an
// extra "tthost" JSON object that Tinytown's readers ignore, so events keep
// Tinytown's event types (tt skips unknown types) and lose nothing.
type detail struct {
	Kind       string     `json:"kind"`
	Backend    string     `json:"backend,omitempty"`
	TurnID     string     `json:"turn_id,omitempty"`
	Round      int        `json:"round,omitempty"`
	Status     string     `json:"status,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Code       string     `json:"code,omitempty"`
	ToolKind   string     `json:"tool_kind,omitempty"`
	Text       string     `json:"text,omitempty"`
	Requeued   int        `json:"requeued,omitempty"`
	Fallback   bool       `json:"fallback,omitempty"`
	Persistent bool       `json:"persistent,omitempty"`
	Usage      *sdk.Usage `json:"usage,omitempty"`
	SessionID  string     `json:"session_id,omitempty"`
	SteerMode  string     `json:"steer_mode,omitempty"`
	Resumed    bool       `json:"resumed,omitempty"`
}

// emit writes an event to the town and agent streams. Events are
// best-effort: a failure is logged, never fatal to the turn.
//
// While a session is open, the write also moves the agent's session record
// to the last session event handled (town.Store.EmitAt), in one MULTI: a
// successor that reattaches to the session resumes after it, so no event is
// written twice or lost.
func (l *Loop) emit(ctx context.Context, typ town.EventType, message string, d detail) {
	l.emitAt(ctx, typ, message, d, false)
}

// emitOutcome is emit for a turn's outcome, the last write of a turn: it
// also clears the running turn from the session record, atomically.
// seq is the session event that ended the turn (0: none).
func (l *Loop) emitOutcome(ctx context.Context, seq uint64, typ town.EventType, message string, d detail) {
	l.handled(seq)
	l.emitAt(ctx, typ, message, d, true)
}

func (l *Loop) emitAt(ctx context.Context, typ town.EventType, message string, d detail, endTurn bool) {
	ev := town.NewEvent(typ, message)
	ev.AgentID = l.id
	ev.Scope = "tthost." + d.Kind
	ev.Extra = map[string]any{"tthost": d}
	var c town.Cursor
	if l.registered {
		c = town.Cursor{Agent: l.id, EndTurn: endTurn}
		if l.cursor > l.cursorWritten {
			c.Seq = l.cursor // else the record has it: a plain write will do
		}
	}
	if err := l.store.EmitAt(ctx, ev, c); err != nil {
		l.log.Warn("emit event", "type", typ, "error", err)
		return
	}
	l.cursorWritten = max(l.cursorWritten, c.Seq)
}

// handled moves the loop's place in the session's events to seq: every
// event up to it has been handled, and the next write records that.
func (l *Loop) handled(seq uint64) { l.cursor = max(l.cursor, seq) }

// placeAt sets the loop's place in a session's events to seq, as the
// session record has it (0 for a new session).
func (l *Loop) placeAt(seq uint64) { l.cursor, l.cursorWritten = seq, seq }

// activity appends a line to the agent's activity log (best-effort).
func (l *Loop) activity(ctx context.Context, text string) {
	if err := l.store.LogActivity(ctx, l.id, text); err != nil {
		l.log.Warn("activity log", "error", err)
	}
}

func (l *Loop) runtimeError(ctx context.Context, round int, code, msg string) {
	l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: "runtime_error", Round: round, Code: code})
}

// deltaBuffer throttles assistant output into the event streams: at most
// one event per second per agent, carrying the latest text, so a chatty CLI
// cannot flood the streams (Tinytown wrote one XADD pair per token, which
// evicted the useful events from the 100-entry agent stream). The full
// output is in the turn's transcript file.
type deltaBuffer struct {
	l       *Loop
	round   int
	turnID  string
	pending strings.Builder
	timer   *time.Timer
	last    time.Time
	seq     uint64 // the session event seq of the last delta in pending
}

const (
	deltaInterval = time.Second
	deltaTextMax  = 2048
)

func newDeltaBuffer(l *Loop, round int, turnID string) *deltaBuffer {
	return &deltaBuffer{l: l, round: round, turnID: turnID}
}

func (d *deltaBuffer) add(ctx context.Context, text string, seq uint64) {
	d.pending.WriteString(text)
	d.seq = max(d.seq, seq)
	if d.timer == nil {
		wait := deltaInterval - time.Since(d.last)
		d.timer = time.NewTimer(max(wait, 0))
	}
}

// due fires when pending text should be flushed (nil channel when none).
func (d *deltaBuffer) due() <-chan time.Time {
	if d.timer == nil {
		return nil
	}
	return d.timer.C
}

func (d *deltaBuffer) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

func (d *deltaBuffer) flush(ctx context.Context) {
	d.stopTimer()
	if d.pending.Len() == 0 {
		return
	}
	text := d.pending.String()
	d.pending.Reset()
	d.last = time.Now()
	if len(text) > deltaTextMax {
		text = strings.ToValidUTF8(text[len(text)-deltaTextMax:], "")
	}
	d.l.handled(d.seq) // the event written now settles the deltas up to it
	d.l.emit(ctx, town.EventAgentAssistantDelta, "Assistant delta: "+prompt.Truncate(lastLine(text), 160), detail{
		Kind: "assistant_delta", TurnID: d.turnID, Round: d.round, Text: text,
	})
}

// lastLine returns the last non-empty line: the freshest progress.
func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if t := strings.TrimSpace(lines[i]); t != "" {
			return t
		}
	}
	return ""
}
