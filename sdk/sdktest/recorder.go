package sdktest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tthost/tthost/sdk"
)

// WaitLong bounds the Recorder's waits: things that should happen
// promptly; it is only reached when the code under test is broken.
const WaitLong = 15 * time.Second

// Recorder is an sdk.EventSink for testing a backend in-process: it keeps
// every event, checks the rules the SDK relies on as they arrive (valid
// UTF-8 deltas and messages, nothing after Exited, one SessionReady), and
// lets a test wait for a condition on an event rather than a timer.
//
//	rec := sdktest.NewRecorder(t)
//	sess, _ := backend.OpenSession(ctx, cfg, rec)
//	d, _ := sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "hi"})
//	c, _ := rec.WaitCompleted(t, d.TurnID)
type Recorder struct {
	mu       sync.Mutex
	events   []sdk.Event
	problems []string
	changed  chan struct{} // closed and replaced on every Emit
}

// NewRecorder returns a Recorder whose rule violations fail t at cleanup.
func NewRecorder(t testing.TB) *Recorder {
	r := &Recorder{changed: make(chan struct{})}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.problems {
			t.Errorf("event sink: %s", p)
		}
	})
	return r
}

// Emit implements sdk.EventSink.
func (r *Recorder) Emit(e sdk.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Kind == sdk.EventAssistantDelta && !utf8.ValidString(e.Text) {
		r.problems = append(r.problems, fmt.Sprintf("delta of %s is not valid UTF-8: %q", e.TurnID, e.Text))
	}
	if e.Error != nil && !utf8.ValidString(e.Error.Message) {
		r.problems = append(r.problems, fmt.Sprintf("error message is not valid UTF-8: %q", e.Error.Message))
	}
	if n := len(r.events); n > 0 && r.events[n-1].Kind == sdk.EventExited {
		r.problems = append(r.problems, fmt.Sprintf("%s emitted after exited", e.Kind))
	}
	if e.Kind == sdk.EventSessionReady && slices.ContainsFunc(r.events, func(p sdk.Event) bool { return p.Kind == sdk.EventSessionReady }) {
		r.problems = append(r.problems, "a second session_ready")
	}
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Events returns the events so far.
func (r *Recorder) Events() []sdk.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// WaitFor waits until done holds for the events so far and returns them;
// after WaitLong it fails the test with what it waited for.
func (r *Recorder) WaitFor(t testing.TB, what string, done func([]sdk.Event) bool) []sdk.Event {
	t.Helper()
	timer := time.NewTimer(WaitLong)
	defer timer.Stop()
	for {
		r.mu.Lock()
		evs, changed := slices.Clone(r.events), r.changed
		r.mu.Unlock()
		if done(evs) {
			return evs
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s; events:\n%s", WaitLong, what, Dump(evs))
		}
	}
}

// WaitKind waits for the first event of a kind (and turn, when turnID is
// not "") and returns it.
func (r *Recorder) WaitKind(t testing.TB, kind sdk.EventKind, turnID string) sdk.Event {
	t.Helper()
	var found sdk.Event
	r.WaitFor(t, string(kind)+" "+turnID, func(evs []sdk.Event) bool {
		for _, e := range evs {
			if e.Kind == kind && (turnID == "" || e.TurnID == turnID) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// WaitReady waits for SessionReady and returns it.
func (r *Recorder) WaitReady(t testing.TB) sdk.SessionReady {
	t.Helper()
	return *r.WaitKind(t, sdk.EventSessionReady, "").Ready
}

// WaitCompleted waits for the turn's TurnCompleted and returns its payload
// and the events so far.
func (r *Recorder) WaitCompleted(t testing.TB, turnID string) (sdk.TurnCompleted, []sdk.Event) {
	t.Helper()
	c := *r.WaitKind(t, sdk.EventTurnCompleted, turnID).Completed
	return c, r.Events()
}

// WaitOutput waits until the turn's output contains s.
func (r *Recorder) WaitOutput(t testing.TB, turnID, s string) {
	t.Helper()
	r.WaitFor(t, fmt.Sprintf("output %q from %s", s, turnID), func(evs []sdk.Event) bool {
		return strings.Contains(Output(evs, turnID), s)
	})
}

// WaitExited waits for Exited and returns every event.
func (r *Recorder) WaitExited(t testing.TB) []sdk.Event {
	t.Helper()
	return r.WaitFor(t, "exited", func(evs []sdk.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == sdk.EventExited
	})
}

// Kinds lists the events' kinds.
func Kinds(evs []sdk.Event) []sdk.EventKind {
	var ks []sdk.EventKind
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

// Dump formats events one per line, for failure messages.
func Dump(evs []sdk.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %-15s %-8s", e.Kind, e.TurnID)
		switch {
		case e.Text != "":
			fmt.Fprintf(&b, " %.80q", e.Text)
		case e.Ready != nil:
			fmt.Fprintf(&b, " %+v", *e.Ready)
		case e.Tool != nil:
			fmt.Fprintf(&b, " %+v", *e.Tool)
		case e.Approval != nil:
			fmt.Fprintf(&b, " %+v", *e.Approval)
		case e.Usage != nil:
			fmt.Fprintf(&b, " %+v", *e.Usage)
		case e.Completed != nil:
			fmt.Fprintf(&b, " %+v", *e.Completed)
		case e.Error != nil:
			fmt.Fprintf(&b, " %+v", *e.Error)
		case e.Exited != nil:
			fmt.Fprintf(&b, " %+v", *e.Exited)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Output concatenates the turn's deltas.
func Output(evs []sdk.Event, turnID string) string { return sdk.TurnText(evs, turnID) }

// OfKind returns the events of a kind for a turn ("" = any turn).
func OfKind(evs []sdk.Event, kind sdk.EventKind, turnID string) []sdk.Event {
	var out []sdk.Event
	for _, e := range evs {
		if e.Kind == kind && (turnID == "" || e.TurnID == turnID) {
			out = append(out, e)
		}
	}
	return out
}

// CheckTurnOrder checks a finished turn's events against the contract:
// TurnStarted first, then only the turn's own kinds (deltas, tool calls,
// approvals, usage, errors), exactly one TurnCompleted, and AwaitingInput
// right after it when awaiting (the session goes on rather than closing).
func CheckTurnOrder(t testing.TB, evs []sdk.Event, turnID string, awaiting bool) {
	t.Helper()
	started, completed := -1, -1
	for i, e := range evs {
		if e.TurnID != turnID {
			continue
		}
		switch {
		case e.Kind == sdk.EventTurnStarted && started < 0 && completed < 0:
			started = i
		case e.Kind == sdk.EventTurnCompleted && started >= 0 && completed < 0:
			completed = i
		case started >= 0 && completed < 0 && slices.Contains([]sdk.EventKind{
			sdk.EventAssistantDelta, sdk.EventToolCall, sdk.EventApproval, sdk.EventUsage, sdk.EventError}, e.Kind):
		default:
			t.Fatalf("turn %s: unexpected %s at event %d:\n%s", turnID, e.Kind, i, Dump(evs))
		}
	}
	if started < 0 || completed < 0 {
		t.Fatalf("turn %s: want turn_started ... turn_completed:\n%s", turnID, Dump(evs))
	}
	if awaiting && (completed+1 >= len(evs) || evs[completed+1].Kind != sdk.EventAwaitingInput) {
		t.Fatalf("turn %s: want awaiting_input right after turn_completed:\n%s", turnID, Dump(evs))
	}
}
