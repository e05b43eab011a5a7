package town

import (
	"testing"
)

// The session record moves with the events: an event written with a
// cursor sets seq in the same MULTI, the turn's outcome clears the turn,
// and a completion counted once is not counted again when a successor
// replays it.
func TestSessionRecordMovesWithEventsAndCountsATurnOnce(t *testing.T) {
	f := newFixture(t)
	a := f.agent("worker")
	if r, err := f.store.SessionRecord(f.ctx, a.ID); err != nil || r != nil {
		t.Fatalf("no record yet: %+v, %v", r, err)
	}
	f.must(f.store.RecordSessionOpened(f.ctx, a.ID, "s-1", "codex"))
	f.must(f.store.RecordTurn(f.ctx, a.ID, TurnPending, 3))
	f.must(f.store.RecordTurn(f.ctx, a.ID, "t-1", 3))
	ev := NewEvent(EventAgentToolCall, "tool")
	ev.AgentID = a.ID
	f.must(f.store.EmitAt(f.ctx, ev, Cursor{Agent: a.ID, Seq: 7}))
	r, err := f.store.SessionRecord(f.ctx, a.ID)
	f.must(err)
	want := SessionRecord{Session: "s-1", Backend: "codex", Seq: 7, Turn: "t-1", Round: 3}
	if r == nil || *r != want {
		t.Fatalf("record %+v, want %+v", r, want)
	}
	evs, err := f.store.ReadEvents(f.ctx, f.store.Keys().EventsAgent(a.ID), "0", 0)
	f.must(err)
	if len(evs) != 1 {
		t.Fatalf("agent stream has %d events, want 1", len(evs))
	}

	for range 2 { // the second is a successor replaying the completion
		f.must(f.store.CountRound(f.ctx, a.ID, "t-1"))
	}
	done := NewEvent(EventAgentTurnCompleted, "done")
	done.AgentID = a.ID
	f.must(f.store.EmitAt(f.ctx, done, Cursor{Agent: a.ID, Seq: 9, EndTurn: true}))
	r, err = f.store.SessionRecord(f.ctx, a.ID)
	f.must(err)
	if r.Turn != "" || r.Round != 0 || r.Seq != 9 || r.CountedTurn != "t-1" {
		t.Fatalf("after the outcome: %+v", r)
	}
	rounds := func() int {
		t.Helper()
		got, err := f.store.GetAgent(f.ctx, a.ID)
		f.must(err)
		return int(got.RoundsCompleted)
	}
	if got := rounds(); got != 1 {
		t.Errorf("rounds_completed %d, want 1: a replayed completion was counted twice", got)
	}
	f.must(f.store.CountRound(f.ctx, a.ID, "t-2"))
	if got := rounds(); got != 2 {
		t.Errorf("rounds_completed %d after a second turn, want 2", got)
	}

	f.must(f.store.RecordSessionOpened(f.ctx, a.ID, "s-2", "codex"))
	r, err = f.store.SessionRecord(f.ctx, a.ID)
	f.must(err)
	if r.Session != "s-2" || r.Seq != 0 || r.Turn != "" || r.CountedTurn != "t-2" {
		t.Errorf("a new session: %+v", r)
	}
	// Turn ids are per session: a new session (a relaunched plugin's)
	// numbering its turns from the start again has its turn counted.
	f.must(f.store.CountRound(f.ctx, a.ID, "t-2"))
	if got := rounds(); got != 3 {
		t.Errorf("rounds_completed %d after turn t-2 of a new session, want 3", got)
	}
	f.must(f.store.CountRound(f.ctx, a.ID, "t-2"))
	if got := rounds(); got != 3 {
		t.Errorf("rounds_completed %d after a replay in the new session, want 3", got)
	}
	f.must(f.store.ForgetSession(f.ctx, a.ID))
	r, err = f.store.SessionRecord(f.ctx, a.ID)
	f.must(err)
	if r == nil || r.Session != "" || r.CountedTurn != "t-2" {
		t.Errorf("after forgetting the session: %+v", r)
	}

	f.must(f.client().HSet(f.ctx, f.store.Keys().SessionRecord(a.ID), "seq", "x").Err())
	if _, err := f.store.SessionRecord(f.ctx, a.ID); err == nil {
		t.Error("a record whose seq does not parse was accepted")
	}
}
