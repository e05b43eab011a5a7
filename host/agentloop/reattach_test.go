package agentloop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// resumingBackends is a successor process's backends: the session the
// predecessor left running survived in its plugin, and resuming it replays
// what happened after the given seq.
type resumingBackends struct {
	*fakeBackends
	survivor string       // the session id that survived ("" none)
	resumed  chan uint64  // the seq each resume started after
	session  *fakeSession // what the resumed session delivers
}

func (b *resumingBackends) ResumeSession(ctx context.Context, agentID, sessionID string, afterSeq uint64) (Session, bool, error) {
	if sessionID != b.survivor {
		return nil, false, nil
	}
	b.resumed <- afterSeq
	b.session.seq = afterSeq // the plugin numbers on from where the session is
	return b.session, true, nil
}

// successor builds a second loop for h's agent, as a new worker process
// would after h's loop detached (or died): same Redis, its own backends.
func (h *harness) successor(be Backends) *harness {
	h.t.Helper()
	h2 := *h
	h2.out = &testenv.Buffer{}
	h2.done = make(chan error, 1)
	var err error
	h2.loop, err = New(Options{
		TownDir: h.loop.opts.TownDir, Config: h.cfg, Store: h.store, Backends: be,
		Name: h.agent.Name, ID: h.agent.ID, MaxRounds: 100,
		Out: h2.out, Now: h.clock.Now, Wakeups: h.wake,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return &h2
}

func (h *harness) record() *town.SessionRecord {
	h.t.Helper()
	r, err := h.store.SessionRecord(h.ctx, h.agent.ID)
	h.must(err)
	if r == nil {
		h.t.Fatal("no session record")
	}
	return r
}

// count returns how many events of the agent's stream carry text.
func (h *harness) count(text string) int {
	h.t.Helper()
	evs, err := h.store.ReadEvents(h.ctx, h.store.Keys().EventsAgent(h.agent.ID), "0", 0)
	h.must(err)
	n := 0
	for _, e := range evs {
		if e.Event != nil && strings.Contains(e.Event.Message, text) {
			n++
		}
	}
	return n
}

// A worker that detaches leaves its turn running and its messages in
// flight; the successor resumes the session after the last event the
// predecessor wrote, follows the turn to its end, writes the outcome once,
// and never delivers the message again.
func TestDetachedTurnIsAdoptedAndSettledOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{persistent: true})
	h.send("write the report")
	h.start()
	s := h.session()
	in := h.nextTurn(s, nil, "write the report")
	s.emit(sdk.Event{Kind: sdk.EventTurnStarted, TurnID: in.turnID})
	s.emit(sdk.Event{Kind: sdk.EventToolCall, TurnID: in.turnID, Tool: &sdk.ToolCall{ID: "c1", Name: "go test", Status: "completed"}})
	h.event("Tool call: go test") // written in one MULTI with the record's seq
	if r := h.record(); r.Seq != 2 {
		t.Fatalf("session record seq %d after the tool call's event, want 2", r.Seq)
	}

	mark := h.out.Len()
	h.loop.Detach()
	h.cancel()
	if err := h.exited(); err != nil {
		t.Fatalf("a detached loop ended with %v", err)
	}
	h.waitOut(mark, "left running for the next worker process")
	select {
	case m := <-s.closed:
		t.Fatalf("detaching closed the session (%v)", m)
	default:
	}
	if n := h.inFlight(); n != 1 {
		t.Fatalf("%d message(s) in flight after detaching, want 1 (the running turn's)", n)
	}
	if r := h.record(); r.Turn != in.turnID || r.Round != 1 || r.Session != "fake-session" {
		t.Fatalf("session record after detaching: %+v", r)
	}
	if st := h.state(); st != town.StateWorking {
		t.Errorf("state %s after detaching, want working (the turn runs on)", st)
	}

	// The turn goes on while no worker reads it; the successor replays it.
	replay := &fakeSession{inputs: make(chan sent, 16), events: make(chan sdk.Event, 64), closed: make(chan sdk.CloseMode, 1)}
	be := &resumingBackends{fakeBackends: h.be, survivor: "fake-session", resumed: make(chan uint64, 1), session: replay}
	h2 := h.successor(be)
	h2.start()
	select {
	case after := <-be.resumed:
		if after != 2 {
			t.Fatalf("resumed after seq %d, want 2 (the last event written)", after)
		}
	case <-time.After(long):
		t.Fatalf("the successor did not resume the session; output:\n%s", h2.out.String())
	}
	h2.waitOut(0, "adopted the turn the previous worker process left running")
	replay.emit(sdk.Event{Kind: sdk.EventUsage, TurnID: in.turnID, Usage: &sdk.Usage{InputTokens: 10, OutputTokens: 5}})
	replay.end(in.turnID, sdk.StatusCompleted, "")
	h2.waitOut(0, "✅ Round 1 completed")
	h.event("Round 1 completed") // the outcome, the turn's last write

	if n := h.inFlight(); n != 0 {
		t.Errorf("%d message(s) in flight after the adopted turn, want 0", n)
	}
	if v := h.field("rounds_completed"); v != "1" {
		t.Errorf("rounds_completed %q, want 1", v)
	}
	for text, want := range map[string]int{"Round 1 completed": 1, "Tool call: go test": 1, "Token usage: 10 in": 1, "Agent turn started (round 1)": 1} {
		if n := h.count(text); n != want {
			t.Errorf("%d event(s) %q in the agent's stream, want %d", n, text, want)
		}
	}
	if r := h.record(); r.Turn != "" || r.Seq != 4 || r.CountedTurn != in.turnID {
		t.Errorf("session record after the outcome: %+v", r)
	}
	select {
	case got := <-replay.inputs:
		t.Errorf("the successor sent the session %s %q: the adopted message was delivered again", got.in.Kind, got.in.Text)
	default:
	}
	if got := h.inbox(); len(got) != 0 {
		t.Errorf("inbox %q after the adopted turn, want empty", got)
	}
	h2.stop()
}

// A successor whose plugin did not keep the session (the reattach window
// passed, or it was another machine's) delivers the messages again.
func TestLostSessionIsNotAdoptedAndItsMessagesAreDeliveredAgain(t *testing.T) {
	h := newHarness(t, harnessOptions{persistent: true})
	h.send("write the report")
	h.start()
	s := h.session()
	in := h.nextTurn(s, nil, "write the report")
	s.emit(sdk.Event{Kind: sdk.EventTurnStarted, TurnID: in.turnID})
	h.event("Agent turn started (round 1)")
	h.loop.Detach()
	h.cancel()
	if err := h.exited(); err != nil {
		t.Fatal(err)
	}

	fresh := &fakeBackends{choice: h.be.choice, sessions: make(chan *fakeSession, 8)}
	be := &resumingBackends{fakeBackends: fresh, survivor: "", resumed: make(chan uint64, 1)}
	h2 := h.successor(be)
	h2.be = fresh
	h2.start()
	s2 := h2.session()
	in2 := h2.nextTurn(s2, nil, "write the report")
	h2.waitOut(0, "did not survive: its turn is delivered again")
	s2.end(in2.turnID, sdk.StatusCompleted, "")
	h2.waitOut(0, "✅ Round 1 completed")
	h2.stop()
}

// A turn the predecessor was still sending when it died (its id not yet
// recorded) is named by the first event of the resumed session; one that
// never reached the plugin is given up after a bound and its messages are
// delivered as never shown.
func TestPendingTurnThatNeverStartedIsDeliveredAgain(t *testing.T) {
	old := adoptPendingWait
	adoptPendingWait = 50 * time.Millisecond
	t.Cleanup(func() { adoptPendingWait = old })

	h := newHarness(t, harnessOptions{persistent: true})
	h.send("write the report")
	// The predecessor took the message and recorded a pending turn, then died.
	res, err := h.store.Intake(h.ctx, h.agent.ID, town.IntakeOptions{})
	h.must(err)
	if len(res.Moved) != 1 {
		t.Fatalf("intake moved %d", len(res.Moved))
	}
	h.must(h.store.RecordSessionOpened(h.ctx, h.agent.ID, "fake-session", "fake"))
	h.must(h.store.RecordTurn(h.ctx, h.agent.ID, town.TurnPending, 1))

	replay := &fakeSession{inputs: make(chan sent, 16), events: make(chan sdk.Event, 64), closed: make(chan sdk.CloseMode, 1)}
	be := &resumingBackends{fakeBackends: h.be, survivor: "fake-session", resumed: make(chan uint64, 1), session: replay}
	h2 := h.successor(be)
	h2.start()
	h2.waitOut(0, "had not started it; its messages are delivered again")
	in := h2.nextTurn(replay, nil, "write the report")
	replay.end(in.turnID, sdk.StatusCompleted, "")
	h2.waitOut(0, "✅ Round 1 completed")
	if v := h.field("rounds_completed"); v != "1" {
		t.Errorf("rounds_completed %q, want 1", v)
	}
	h2.stop()
}
