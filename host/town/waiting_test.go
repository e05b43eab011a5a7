package town

import (
	"reflect"
	"testing"
)

func TestWaitingListsUrgentInboxAndInFlightWithoutTakingThem(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	k := f.store.Keys()
	taken := NewTask(SupervisorID, a.ID, "taken")
	f.must(f.store.Send(f.ctx, taken))
	if res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{}); err != nil || len(res.Moved) != 1 {
		t.Fatalf("intake: %+v, %v", res, err)
	}
	u1, u2 := NewTask(SupervisorID, a.ID, "urgent 1"), NewTask(SupervisorID, a.ID, "urgent 2")
	n1 := NewQuery(SupervisorID, a.ID, "normal 1")
	f.must(f.store.SendUrgent(f.ctx, u1))
	f.must(f.store.SendUrgent(f.ctx, u2))
	f.must(f.store.Send(f.ctx, n1))
	f.must(f.rdb.RPush(f.ctx, k.Inbox(a.ID), "not json").Err())

	got, err := f.store.Waiting(f.ctx, a.ID)
	f.must(err)
	type row struct {
		place      Place
		id         string
		fromUrgent bool
	}
	var rows []row
	for _, q := range got {
		r := row{place: q.Place, fromUrgent: q.FromUrgent}
		if q.Msg != nil {
			r.id = q.Msg.ID
		} else {
			r.id = "raw:" + q.Raw
		}
		rows = append(rows, r)
	}
	want := []row{
		{PlaceUrgent, u1.ID, false}, {PlaceUrgent, u2.ID, false},
		{PlaceInbox, n1.ID, false}, {PlaceInbox, "raw:not json", false},
		{PlaceInFlight, taken.ID, false},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("Waiting = %+v\nwant      %+v", rows, want)
	}
	if n, _ := f.store.InFlightLen(f.ctx, a.ID); n != 1 {
		t.Errorf("in flight %d after Waiting, want 1: it must take nothing", n)
	}
	if n, _ := f.store.InboxLen(f.ctx, a.ID); n != 2 {
		t.Errorf("inbox %d after Waiting, want 2", n)
	}
}
