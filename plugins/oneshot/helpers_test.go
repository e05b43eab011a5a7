package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// waitLong bounds waits for things that should happen promptly; it is only
// reached when the code under test is broken.
const waitLong = 15 * time.Second

// recorder is a fake sdk.EventSink: it keeps every event, checks the rules
// the SDK relies on as they arrive, and lets a test wait for a condition.
type recorder struct {
	mu       sync.Mutex
	events   []sdk.Event
	problems []string
	changed  chan struct{} // closed and replaced on every Emit
}

func newRecorder(t testing.TB) *recorder {
	r := &recorder{changed: make(chan struct{})}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.problems {
			t.Errorf("event sink: %s", p)
		}
	})
	return r
}

func (r *recorder) Emit(e sdk.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Kind == sdk.EventAssistantDelta && !utf8.ValidString(e.Text) {
		r.problems = append(r.problems, fmt.Sprintf("delta of %s is not valid UTF-8: %q", e.TurnID, e.Text))
	}
	if n := len(r.events); n > 0 && r.events[n-1].Kind == sdk.EventExited {
		r.problems = append(r.problems, fmt.Sprintf("%s emitted after exited", e.Kind))
	}
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) snapshot() []sdk.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// waitFor waits until done holds for the events so far and returns them.
func (r *recorder) waitFor(t testing.TB, what string, done func([]sdk.Event) bool) []sdk.Event {
	t.Helper()
	timer := time.NewTimer(waitLong)
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
			t.Fatalf("timed out after %v waiting for %s; events:\n%s", waitLong, what, dump(evs))
		}
	}
}

// waitCompleted waits for the turn's TurnCompleted and returns its payload
// and the events so far.
func (r *recorder) waitCompleted(t testing.TB, turnID string) (sdk.TurnCompleted, []sdk.Event) {
	t.Helper()
	var c sdk.TurnCompleted
	evs := r.waitFor(t, "turn_completed of "+turnID, func(evs []sdk.Event) bool {
		for _, e := range evs {
			if e.Kind == sdk.EventTurnCompleted && e.TurnID == turnID {
				c = *e.Completed
				return true
			}
		}
		return false
	})
	return c, evs
}

// waitOutput waits until the turn's output contains s.
func (r *recorder) waitOutput(t testing.TB, turnID, s string) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("output %q from %s", s, turnID), func(evs []sdk.Event) bool {
		return strings.Contains(output(evs, turnID), s)
	})
}

func kinds(evs []sdk.Event) []sdk.EventKind {
	var ks []sdk.EventKind
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

func dump(evs []sdk.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %-15s %-7s", e.Kind, e.TurnID)
		switch {
		case e.Text != "":
			fmt.Fprintf(&b, " %.80q", e.Text)
		case e.Completed != nil:
			fmt.Fprintf(&b, " %+v", *e.Completed)
		case e.Error != nil:
			fmt.Fprintf(&b, " %+v", *e.Error)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// output concatenates the turn's deltas.
func output(evs []sdk.Event, turnID string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Kind == sdk.EventAssistantDelta && e.TurnID == turnID {
			b.WriteString(e.Text)
		}
	}
	return b.String()
}

// checkTurnOrder checks a finished turn's events: TurnStarted first, only
// deltas and errors in between, exactly one TurnCompleted, and then
// AwaitingInput (unless awaiting is false: the session was closing).
func checkTurnOrder(t testing.TB, evs []sdk.Event, turnID string, awaiting bool) {
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
		case (e.Kind == sdk.EventAssistantDelta || e.Kind == sdk.EventError) && started >= 0 && completed < 0:
		default:
			t.Fatalf("turn %s: unexpected %s at event %d:\n%s", turnID, e.Kind, i, dump(evs))
		}
	}
	if started < 0 || completed < 0 {
		t.Fatalf("turn %s: want turn_started ... turn_completed:\n%s", turnID, dump(evs))
	}
	if awaiting && (completed+1 >= len(evs) || evs[completed+1].Kind != sdk.EventAwaitingInput) {
		t.Fatalf("turn %s: want awaiting_input right after turn_completed:\n%s", turnID, dump(evs))
	}
}

// openOpts shape a test session; zero values get working defaults.
type openOpts struct {
	cli     string
	command string
	workdir string
	env     map[string]string
	options map[string]string
}

// openSession opens a session whose processes carry procs' marker, and
// closes it immediately at cleanup (before procs checks for leftovers).
func openSession(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder) {
	t.Helper()
	cfg := sdk.SessionConfig{
		CLIName: o.cli,
		Command: o.command,
		Workdir: o.workdir,
		Env:     maps.Clone(o.env),
		Options: o.options,
	}
	if cfg.CLIName == "" {
		cfg.CLIName = "claude"
	}
	if cfg.Workdir == "" {
		cfg.Workdir = t.TempDir()
	}
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env[sdktest.MarkerEnv] = procs.Marker()
	rec := newRecorder(t)
	s, err := newBackend().OpenSession(context.Background(), cfg, rec)
	if err != nil {
		t.Fatalf("OpenSession(%q): %v", o.command, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s.(*session), rec
}

// send starts a turn and fails the test unless it started.
func send(t testing.TB, s sdk.Session, in sdk.Input) string {
	t.Helper()
	if in.Kind == 0 {
		in.Kind = sdk.InputTurn
	}
	d, err := s.Send(context.Background(), in)
	if err != nil {
		t.Fatalf("Send(%v): %v", in.Kind, err)
	}
	if d.Kind != sdk.DeliveryStarted || d.TurnID == "" {
		t.Fatalf("Send(%v) = %+v, want started with a turn id", in.Kind, d)
	}
	return d.TurnID
}

// runTurn runs one turn to its end and returns its outcome and output.
func runTurn(t testing.TB, s sdk.Session, rec *recorder, in sdk.Input) (sdk.TurnCompleted, string) {
	t.Helper()
	id := send(t, s, in)
	c, _ := rec.waitCompleted(t, id)
	evs := rec.waitFor(t, "awaiting_input after "+id, func(evs []sdk.Event) bool {
		return evs[len(evs)-1].Kind == sdk.EventAwaitingInput
	})
	checkTurnOrder(t, evs, id, true)
	return c, output(evs, id)
}

// assertGone fails unless every process of the test is gone.
func assertGone(t testing.TB, procs *sdktest.Processes) {
	t.Helper()
	if left := procs.WaitGone(2 * time.Second); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left after the turn: %s", strings.Join(desc, "; "))
	}
}
