package suite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// The rules of docs/protocol.md (and the proto's comments) that checks
// quote in their failure messages.
const (
	ruleSeq          = `events are numbered seq = 1, 2, 3, … per session without gaps`
	ruleReady        = `SessionReady is emitted once per session, before any turn event`
	ruleTurnID       = `every event of a turn carries the turn id that Send returned`
	ruleOneCompleted = `every started turn ends with exactly one TurnCompleted`
	ruleOneTurn      = `a session runs one turn at a time; a turn sent while another runs fails with FAILED_PRECONDITION (sdk.ErrTurnRunning)`
	ruleAwaiting     = `AwaitingInput says the session is idle and ready for the next turn`
	ruleExitedLast   = `Exited is the last event of a session; the stream ends after it`
	ruleFatal        = `a fatal Error means the session cannot continue; an Exited event follows`
	ruleOwnSession   = `Events streams one session's events: each event carries its session's id`
	ruleCloseOrderly = `the SDK closes every session (TurnCompleted, Exited) before the plugin exits, so the host never has to synthesise Exited`
	ruleInBand       = `errors travel as gRPC status codes or as Error events in the stream, never as log text`
	ruleClose        = `when CloseSession returns, every process the session started is gone`
	ruleIntact       = `a prompt reaches the CLI whole and the CLI's output reaches the host whole and in order, as valid UTF-8 AssistantDelta text of its turn (the suite compares them as Target.Prompts.Echo says)`
	ruleLongPrompt   = `a turn runs until it completes, fails, is cancelled or its session closes; the suite's long prompt (Target.Prompts.Long, --long-prompt) must keep the CLI busy until it is cancelled, and the CLI should show it is (a first line of output), so that a check acts on a turn that is really running`
)

// stream follows one session's events: it keeps them, checks the rules
// every session keeps as they arrive, and lets a check wait for a
// condition. Its goroutine ends when the client closes the session's
// event channel (after Exited, or once the plugin is gone).
type stream struct {
	name string // "session 2", for messages
	id   string // the session's id
	sess *client.Session
	done chan struct{} // closed when the reader has seen the channel close

	mu       sync.Mutex
	events   []sdk.Event
	problems []string
	ended    bool
	changed  chan struct{} // closed and replaced at every change

	ready   bool
	running string // the turn between its TurnStarted and TurnCompleted
	turns   map[string]*turnState
	fatal   bool
}

type turnState struct {
	started, completed int
}

func follow(name string, sess *client.Session) *stream {
	s := newStream(name, sess.ID(), sess.Events())
	s.sess = sess
	return s
}

// newStream follows the events of session id as they come on events.
func newStream(name, id string, events <-chan sdk.Event) *stream {
	s := &stream{
		name:    name,
		id:      id,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		turns:   map[string]*turnState{},
	}
	go s.read(events)
	return s
}

func (s *stream) read(events <-chan sdk.Event) {
	defer close(s.done)
	for ev := range events {
		s.add(ev)
	}
	s.mu.Lock()
	s.ended = true
	if n := len(s.events); n == 0 || s.events[n-1].Kind != sdk.EventExited {
		s.problem(ruleExitedLast, "the event stream ended without an Exited event")
	}
	s.signal()
	s.mu.Unlock()
}

// signal wakes the waiters; s.mu is held.
func (s *stream) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// problem records a rule violation; s.mu is held.
func (s *stream) problem(rule, format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf("%s: %s (rule: %s)", s.name, fmt.Sprintf(format, args...), rule))
}

func (s *stream) turn(id string) *turnState {
	t := s.turns[id]
	if t == nil {
		t = &turnState{}
		s.turns[id] = t
	}
	return t
}

func (s *stream) add(ev sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	n := len(s.events)
	s.events = append(s.events, ev)
	what := describeEvent(ev)
	if ev.Seq != uint64(n+1) {
		s.problem(ruleSeq, "event #%d (%s) has seq %d, want %d", n+1, what, ev.Seq, n+1)
	}
	if ev.SessionID != s.id {
		s.problem(ruleOwnSession, "%s belongs to session %q, not to this one (%q)", what, ev.SessionID, s.id)
	}
	switch ev.Kind {
	case sdk.EventSessionReady:
		if s.ready {
			s.problem(ruleReady, "a second SessionReady (%s)", what)
		}
		if len(s.turns) > 0 {
			s.problem(ruleReady, "SessionReady (%s) after a turn started", what)
		}
		s.ready = true
	case sdk.EventTurnStarted:
		switch {
		case ev.TurnID == "":
			s.problem(ruleTurnID, "%s has no turn id", what)
		case !s.ready:
			s.problem(ruleReady, "%s before SessionReady", what)
		case s.running != "":
			s.problem(ruleOneTurn, "%s while turn %q is still running (no TurnCompleted yet)", what, s.running)
		case s.turns[ev.TurnID] != nil:
			s.problem(ruleTurnID, "%s reuses the id of an earlier turn", what)
		case s.fatal:
			s.problem(ruleFatal, "%s after a fatal Error", what)
		}
		s.turn(ev.TurnID).started++
		s.running = ev.TurnID
	case sdk.EventTurnCompleted:
		t := s.turn(ev.TurnID)
		switch {
		case ev.TurnID == "":
			s.problem(ruleTurnID, "%s has no turn id", what)
		case t.started == 0:
			s.problem(ruleOneCompleted, "%s for a turn that never started (no TurnStarted with that id)", what)
		case t.completed > 0:
			s.problem(ruleOneCompleted, "a second TurnCompleted for turn %q (%s)", ev.TurnID, what)
		}
		if c := ev.Completed; c == nil || !slices.Contains([]sdk.TurnStatus{sdk.StatusCompleted, sdk.StatusInterrupted, sdk.StatusFailed}, c.Status) {
			s.problem(ruleOneCompleted, "%s has no valid status (want completed, interrupted or failed)", what)
		}
		t.completed++
		if s.running == ev.TurnID {
			s.running = ""
		}
	case sdk.EventAssistantDelta, sdk.EventToolCall, sdk.EventApproval, sdk.EventUsage, sdk.EventError:
		if ev.TurnID == "" && s.running != "" && ev.Kind != sdk.EventError {
			s.problem(ruleTurnID, "%s without a turn id while turn %q runs", what, s.running)
		}
		if ev.TurnID != "" {
			t := s.turns[ev.TurnID]
			switch {
			case t == nil:
				s.problem(ruleTurnID, "%s names turn %q, which has not started", what, ev.TurnID)
			case t.completed > 0:
				s.problem(ruleOneCompleted, "%s after its turn's TurnCompleted", what)
			}
		}
		if ev.Kind == sdk.EventAssistantDelta && !utf8.ValidString(ev.Text) {
			s.problem(ruleInBand, "%s carries invalid UTF-8", what)
		}
		if ev.Kind == sdk.EventError && ev.Error != nil && ev.Error.Fatal {
			s.fatal = true
		}
	case sdk.EventAwaitingInput:
		if s.running != "" {
			s.problem(ruleAwaiting, "%s while turn %q is still running", what, s.running)
		}
	case sdk.EventExited:
		if s.running != "" {
			s.problem(ruleOneCompleted, "the session exited (%s) while turn %q had no TurnCompleted", what, s.running)
		}
		if ev.Exited != nil && (ev.Exited.Reason == sdk.ExitPluginExited || ev.Exited.Reason == client.ExitEventsLost) {
			s.problem(ruleCloseOrderly, "the host had to synthesise Exited (reason %q): the plugin went away without closing the session", ev.Exited.Reason)
		}
	}
}

// state returns the events so far, whether the stream has ended, and a
// channel closed at the next change.
func (s *stream) state() ([]sdk.Event, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events), s.ended, s.changed
}

// snapshot returns the events so far.
func (s *stream) snapshot() []sdk.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// violations returns the rule violations seen so far.
func (s *stream) violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// errStreamEnded: the session's events ended before the condition held.
type waitError struct {
	what   string
	ended  bool
	ctxErr error
	events []sdk.Event
}

func (e *waitError) Error() string {
	why := "the event stream ended"
	if !e.ended {
		why = fmt.Sprintf("gave up (%v)", e.ctxErr)
	}
	return fmt.Sprintf("waiting for %s: %s; the session's last events:\n%s", e.what, why, dumpEvents(e.events, 12))
}

// wait waits until cond holds for the events so far and returns them.
func (s *stream) wait(ctx context.Context, what string, cond func([]sdk.Event) bool) ([]sdk.Event, error) {
	for {
		evs, ended, changed := s.state()
		if cond(evs) {
			return evs, nil
		}
		if ended {
			return evs, &waitError{what: what, ended: true, events: evs}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return evs, &waitError{what: what, ctxErr: ctx.Err(), events: evs}
		}
	}
}

// Predicates over a session's events.

func hasKind(kind sdk.EventKind, turnID string) func([]sdk.Event) bool {
	return func(evs []sdk.Event) bool { return find(evs, kind, turnID) >= 0 }
}

// find returns the index of the first event of kind (for turnID when it is
// not empty), or -1.
func find(evs []sdk.Event, kind sdk.EventKind, turnID string) int {
	return slices.IndexFunc(evs, func(e sdk.Event) bool {
		return e.Kind == kind && (turnID == "" || e.TurnID == turnID)
	})
}

// awaitingAfter: an AwaitingInput follows the TurnCompleted of turnID.
func awaitingAfter(turnID string) func([]sdk.Event) bool {
	return func(evs []sdk.Event) bool {
		i := find(evs, sdk.EventTurnCompleted, turnID)
		return i >= 0 && slices.ContainsFunc(evs[i+1:], func(e sdk.Event) bool { return e.Kind == sdk.EventAwaitingInput })
	}
}

func ofTurn(evs []sdk.Event, turnID string) []sdk.Event {
	var out []sdk.Event
	for _, e := range evs {
		if e.TurnID == turnID {
			out = append(out, e)
		}
	}
	return out
}

// describeEvent is one line about an event, for messages.
func describeEvent(e sdk.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seq %d %s", e.Seq, e.Kind)
	if e.TurnID != "" {
		fmt.Fprintf(&b, " turn=%q", e.TurnID)
	}
	switch {
	case e.Ready != nil:
		fmt.Fprintf(&b, " runtime_session_id=%q resumed=%v", e.Ready.RuntimeSessionID, e.Ready.Resumed)
		if e.Ready.ContextLostReason != "" {
			fmt.Fprintf(&b, " context_lost=%q", clip(e.Ready.ContextLostReason, 80))
		}
	case e.Completed != nil:
		fmt.Fprintf(&b, " status=%s", e.Completed.Status)
		if e.Completed.Error != "" {
			fmt.Fprintf(&b, " error=%q", clip(e.Completed.Error, 80))
		}
	case e.Error != nil:
		fmt.Fprintf(&b, " code=%q fatal=%v message=%q", e.Error.Code, e.Error.Fatal, clip(e.Error.Message, 80))
	case e.Exited != nil:
		fmt.Fprintf(&b, " reason=%q", e.Exited.Reason)
	case e.Kind == sdk.EventAssistantDelta:
		fmt.Fprintf(&b, " text=%q", clip(e.Text, 60))
	}
	return b.String()
}

// dumpEvents lists the last n events, one per line, indented.
func dumpEvents(evs []sdk.Event, n int) string {
	if len(evs) == 0 {
		return "    (no events)"
	}
	var lines []string
	if len(evs) > n {
		lines = append(lines, fmt.Sprintf("    … %d earlier events", len(evs)-n))
		evs = evs[len(evs)-n:]
	}
	for _, e := range evs {
		lines = append(lines, "    "+describeEvent(e))
	}
	return strings.Join(lines, "\n")
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
