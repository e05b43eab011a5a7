package town

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A worker whose lease was taken over is refused by Redis itself on every
// write that moves messages, and nothing changes.
func TestAStaleWorkerIsFencedOutOfEveryMessageMove(t *testing.T) {
	f := newFixture(t)
	a := f.agent("fenced")
	old, err := f.store.AcquireLease(f.ctx, a.ID, LeaseOwner{PID: 100, Host: "h"}, time.Minute, nil)
	f.must(err)
	stale := old.Worker()
	for i := 0; i < 3; i++ {
		f.must(f.store.Send(f.ctx, NewTask(SupervisorID, a.ID, "task")))
	}
	res, err := stale.Intake(f.ctx, IntakeOptions{Max: 2})
	f.must(err)
	if len(res.Moved) != 2 {
		t.Fatalf("the holder's intake moved %d, want 2", len(res.Moved))
	}

	cur, err := f.store.AcquireLease(f.ctx, a.ID, LeaseOwner{PID: 200, Host: "h"}, time.Minute,
		func(LeaseOwner) bool { return true })
	f.must(err)
	if !cur.TookOver || cur.Previous == nil || cur.Previous.PID != 100 {
		t.Errorf("takeover: TookOver %v Previous %+v; want the old holder", cur.TookOver, cur.Previous)
	}
	if cur.Owner.Generation() != old.Owner.Generation()+1 {
		t.Errorf("generation %d after %d; want the next one", cur.Owner.Generation(), old.Owner.Generation())
	}

	inflight := func() int { return int(f.rdb.LLen(f.ctx, f.store.Keys().InFlight(a.ID)).Val()) }
	inbox := func() int { return int(f.rdb.LLen(f.ctx, f.store.Keys().Inbox(a.ID)).Val()) }
	checks := map[string]error{}
	_, checks["intake"] = stale.Intake(f.ctx, IntakeOptions{Full: true})
	checks["ack"] = stale.Ack(f.ctx, res.Moved[0])
	_, checks["requeue"] = stale.Requeue(f.ctx, res.Moved...)
	checks["dead-letter"] = stale.DeadLetter(f.ctx, res.Moved[1], "x")
	checks["re-route"] = stale.Reroute(f.ctx, res.Moved[1])
	checks["refresh"] = old.Refresh(f.ctx)
	for op, err := range checks {
		if !errors.Is(err, ErrFenced) {
			t.Errorf("stale %s: %v; want ErrFenced", op, err)
		}
	}
	if inflight() != 2 || inbox() != 1 {
		t.Errorf("after the stale writes: %d in flight, %d in the inbox; want 2 and 1 (nothing moved)", inflight(), inbox())
	}
	// The new holder owns them.
	n, err := cur.Worker().Requeue(f.ctx, res.Moved...)
	if err != nil || n != 2 {
		t.Fatalf("the new holder's requeue: %d, %v", n, err)
	}
	// Releasing the stale lease does not release the new one.
	f.must(old.Release(f.ctx))
	if h, _ := f.store.LeaseHolder(f.ctx, a.ID); h == nil || h.PID != 200 {
		t.Errorf("holder after the stale release: %+v", h)
	}
}

// An expired lease nobody took is re-taken by its holder's refresh; one
// that another worker took (even if it released it since) is lost.
func TestRefreshRetakesOnlyALeaseNobodyTookSince(t *testing.T) {
	f := newFixture(t)
	id := NewID()
	a, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 1, Host: "h"}, time.Minute, nil)
	f.must(err)
	f.must(f.rdb.Del(f.ctx, f.store.Keys().Lease(id)).Err()) // as if it expired
	f.must(a.Refresh(f.ctx))

	f.must(f.rdb.Del(f.ctx, f.store.Keys().Lease(id)).Err())
	b, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 2, Host: "h"}, time.Minute, nil)
	f.must(err)
	if b.TookOver || b.Previous == nil || b.Previous.PID != 1 {
		t.Errorf("after an expiry: TookOver %v Previous %+v; want the expired holder, not a takeover", b.TookOver, b.Previous)
	}
	f.must(b.Release(f.ctx))
	if err := a.Refresh(f.ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("refresh after another worker held the agent: %v; want ErrFenced", err)
	}
	c, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 3, Host: "h"}, time.Minute, nil)
	f.must(err)
	if c.Previous != nil {
		t.Errorf("after a clean release: Previous %+v; want none", c.Previous)
	}
}

func TestIntakeStopsAtMaxBytesButAlwaysTakesOne(t *testing.T) {
	f := newFixture(t)
	a := f.agent("bytes")
	big := NewTask(SupervisorID, a.ID, strings.Repeat("x", 5000))
	f.must(f.store.Send(f.ctx, big))
	for i := 0; i < 5; i++ {
		f.must(f.store.Send(f.ctx, NewTask(SupervisorID, a.ID, strings.Repeat("y", 300))))
	}
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{MaxBytes: 1000})
	f.must(err)
	if len(res.Moved) != 1 || res.Moved[0].Msg.ID != big.ID {
		t.Fatalf("first intake moved %d; want the oversized message alone", len(res.Moved))
	}
	res, err = f.store.Intake(f.ctx, a.ID, IntakeOptions{MaxBytes: 1000})
	f.must(err)
	total := 0
	for _, e := range res.Moved {
		total += len(e.Raw)
	}
	if len(res.Moved) < 1 || total > 1000 || res.InboxLeft != int64(5-len(res.Moved)) {
		t.Fatalf("second intake moved %d (%d bytes), %d left; want as many as fit in 1000 bytes", len(res.Moved), total, res.InboxLeft)
	}
}

func TestRerouteHandsAMessageToItsRecipient(t *testing.T) {
	f := newFixture(t)
	me, other := f.agent("me"), f.agent("other")
	l, err := f.store.AcquireLease(f.ctx, me.ID, LeaseOwner{PID: 1, Host: "h"}, time.Minute, nil)
	f.must(err)
	w := l.Worker()
	misaddressed := NewTask(SupervisorID, other.ID, "for the other")
	nobody := NewTask(SupervisorID, NewID(), "for nobody")
	for _, m := range []*Message{misaddressed, nobody} {
		raw, err := m.Marshal()
		f.must(err)
		f.must(f.rdb.RPush(f.ctx, f.store.Keys().Inbox(me.ID), raw).Err())
	}
	res, err := w.Intake(f.ctx, IntakeOptions{})
	f.must(err)
	f.must(w.Reroute(f.ctx, res.Moved[0]))
	if err := w.Reroute(f.ctx, res.Moved[1]); !errors.Is(err, ErrAgentNotFound) {
		t.Fatalf("re-route to a missing agent: %v; want ErrAgentNotFound", err)
	}
	got, _, err := f.store.PeekInbox(f.ctx, other.ID, 10)
	f.must(err)
	if len(got) != 1 || got[0].ID != misaddressed.ID {
		t.Fatalf("the recipient's inbox: %+v", got)
	}
	if n := f.rdb.LLen(f.ctx, f.store.Keys().Wake(other.ID)).Val(); n != 1 {
		t.Errorf("the recipient was not woken")
	}
	left, err := f.store.InFlight(f.ctx, me.ID)
	f.must(err)
	if len(left) != 1 || left[0].Msg.ID != nobody.ID {
		t.Errorf("in flight after re-routing: %d entries; want only the one for nobody", len(left))
	}
}
