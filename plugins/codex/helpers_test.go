package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// waitLong bounds waits for things that should happen promptly; it is only
// reached when the code under test is broken.
const waitLong = 15 * time.Second

const fakePkg = "github.com/tthost/tthost/plugins/codex/internal/fakeappserver"

// fakeBinary builds the fake app-server (once per test process).
func fakeBinary(t testing.TB) string {
	return sdktest.Build(t, fakePkg, "fake-codex-app-server")
}

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

// waitKind waits for the first event of a kind (and turn, when turnID is
// not "") and returns it.
func (r *recorder) waitKind(t testing.TB, kind sdk.EventKind, turnID string) sdk.Event {
	t.Helper()
	var found sdk.Event
	r.waitFor(t, string(kind)+" "+turnID, func(evs []sdk.Event) bool {
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

// waitReady waits for SessionReady and returns it.
func (r *recorder) waitReady(t testing.TB) sdk.SessionReady {
	t.Helper()
	return *r.waitKind(t, sdk.EventSessionReady, "").Ready
}

// waitCompleted waits for the turn's TurnCompleted and returns its payload.
func (r *recorder) waitCompleted(t testing.TB, turnID string) sdk.TurnCompleted {
	t.Helper()
	return *r.waitKind(t, sdk.EventTurnCompleted, turnID).Completed
}

// waitOutput waits until the turn's output contains s.
func (r *recorder) waitOutput(t testing.TB, turnID, s string) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("output %q from %s", s, turnID), func(evs []sdk.Event) bool {
		return strings.Contains(output(evs, turnID), s)
	})
}

// waitExited waits for Exited and returns every event.
func (r *recorder) waitExited(t testing.TB) []sdk.Event {
	t.Helper()
	return r.waitFor(t, "exited", func(evs []sdk.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == sdk.EventExited
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

// ofKind returns the events of a kind for a turn ("" = any turn).
func ofKind(evs []sdk.Event, kind sdk.EventKind, turnID string) []sdk.Event {
	var out []sdk.Event
	for _, e := range evs {
		if e.Kind == kind && (turnID == "" || e.TurnID == turnID) {
			out = append(out, e)
		}
	}
	return out
}

// checkTurnOrder checks a finished turn's events: TurnStarted first, then
// only the turn's own kinds, exactly one TurnCompleted, and AwaitingInput
// right after it when awaiting (the session goes on).
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
		case started >= 0 && completed < 0 && slices.Contains([]sdk.EventKind{
			sdk.EventAssistantDelta, sdk.EventToolCall, sdk.EventApproval, sdk.EventUsage, sdk.EventError}, e.Kind):
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

// fake is one test's view of the fake app-server: where it logs.
type fake struct {
	dir    string
	log    string // FAKE_CODEX_LOG
	starts string // FAKE_CODEX_STARTS
}

func newFake(t testing.TB) *fake {
	dir := t.TempDir()
	return &fake{dir: dir, log: filepath.Join(dir, "received.jsonl"), starts: filepath.Join(dir, "starts")}
}

// received is one message the fake logged.
type received struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// messages returns what the fake received so far, in order.
func (f *fake) messages(t testing.TB) []received {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []received
	for l := range bytes.Lines(b) {
		var m received
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("fake log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// params returns the params of every request of a method the fake got,
// decoded into maps.
func (f *fake) params(t testing.TB, method string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range f.messages(t) {
		if m.Method == method {
			var p map[string]any
			if err := json.Unmarshal(m.Params, &p); err != nil {
				t.Fatalf("%s params %s: %v", method, m.Params, err)
			}
			out = append(out, p)
		}
	}
	return out
}

// answers returns the fake's log entries that answer its server requests.
func (f *fake) answers(t testing.TB) []received {
	t.Helper()
	var out []received
	for _, m := range f.messages(t) {
		if m.Method == "" {
			out = append(out, m)
		}
	}
	return out
}

func (f *fake) startCount(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(f.starts)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "start\n")
}

// openOpts shape a test session; zero values get working defaults.
type openOpts struct {
	cli      string // default codex
	command  string // default: the fake
	env      map[string]string
	options  map[string]string
	resumeID string
	logDir   string
	tweak    func(*session)
}

// open opens a session against the fake (or o.command) whose processes
// carry procs' marker, and closes it immediately at cleanup (before procs
// checks for leftovers).
func open(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder, *fake) {
	t.Helper()
	f := newFake(t)
	cfg := sdk.SessionConfig{
		CLIName:   o.cli,
		Command:   o.command,
		Workdir:   t.TempDir(),
		ResumeID:  o.resumeID,
		Options:   o.options,
		AgentID:   "agent-id-1",
		AgentName: "worker-1",
		LogDir:    o.logDir,
		Env: map[string]string{
			sdktest.MarkerEnv:   procs.Marker(),
			"GORACE":            "atexit_sleep_ms=0",
			"FAKE_CODEX_LOG":    f.log,
			"FAKE_CODEX_STARTS": f.starts,
		},
	}
	maps.Copy(cfg.Env, o.env)
	if cfg.CLIName == "" {
		cfg.CLIName = cliCodex
	}
	if cfg.Command == "" {
		cfg.Command = fakeBinary(t)
	}
	rec := newRecorder(t)
	var s *session
	if o.tweak == nil {
		ss, err := newBackend().OpenSession(context.Background(), cfg, rec)
		if err != nil {
			t.Fatalf("OpenSession(%q): %v", cfg.Command, err)
		}
		s = ss.(*session)
	} else {
		st, err := validate(cfg)
		if err != nil {
			t.Fatalf("validate(%q): %v", cfg.Command, err)
		}
		s = openSession(st, rec, o.tweak)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, rec, f
}

// send delivers input and fails the test unless it was delivered as want.
func send(t testing.TB, s sdk.Session, in sdk.Input, want sdk.DeliveryKind) string {
	t.Helper()
	if in.Kind == 0 {
		in.Kind = sdk.InputTurn
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	d, err := s.Send(ctx, in)
	if err != nil {
		t.Fatalf("Send(%v %.40q): %v", in.Kind, in.Text, err)
	}
	if d.Kind != want || (want != sdk.DeliveryNoTurn && d.TurnID == "") {
		t.Fatalf("Send(%v %.40q) = %+v, want %v with a turn id", in.Kind, in.Text, d, want)
	}
	return d.TurnID
}

// runTurn runs one turn to its end; it returns the turn id, its outcome and
// the events so far.
func runTurn(t testing.TB, s sdk.Session, rec *recorder, text string) (string, sdk.TurnCompleted, []sdk.Event) {
	t.Helper()
	id := send(t, s, sdk.Input{Kind: sdk.InputTurn, Text: text}, sdk.DeliveryStarted)
	c := rec.waitCompleted(t, id)
	evs := rec.waitFor(t, "awaiting_input after "+id, func(evs []sdk.Event) bool {
		return evs[len(evs)-1].Kind == sdk.EventAwaitingInput
	})
	checkTurnOrder(t, evs, id, true)
	return id, c, evs
}

// assertGone fails unless every process of the test is gone.
func assertGone(t testing.TB, procs *sdktest.Processes) {
	t.Helper()
	if left := procs.WaitGone(2 * time.Second); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left: %s", strings.Join(desc, "; "))
	}
}
