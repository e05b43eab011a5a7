package town

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLeaseAllowsOneWorkerPerAgent(t *testing.T) {
	f := newFixture(t)
	id := NewID()
	first, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 100, Host: "h1"}, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	alive := func(LeaseOwner) bool { return false }
	_, err = f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 200, Host: "h1"}, time.Minute, alive)
	if !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "pid 100 on host h1") {
		t.Fatalf("second worker: %v; want ErrLeaseHeld naming the holder", err)
	}
	if err := first.Refresh(f.ctx); err != nil {
		t.Fatalf("holder refresh: %v", err)
	}
	if err := first.Release(f.ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := f.store.LeaseHolder(f.ctx, id); err != nil || h != nil {
		t.Fatalf("after release: holder %v err %v", h, err)
	}
}

func TestLeaseOfADeadHolderIsTakenOver(t *testing.T) {
	f := newFixture(t)
	id := NewID()
	old, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 100, Host: "h1"}, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	dead := func(o LeaseOwner) bool { return o.PID == 100 }
	cur, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 200, Host: "h1"}, time.Minute, dead)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if err := old.Refresh(f.ctx); !errors.Is(err, ErrFenced) {
		t.Errorf("the old holder's refresh: %v; want ErrFenced", err)
	}
	if err := old.Release(f.ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := f.store.LeaseHolder(f.ctx, id); h == nil || h.PID != 200 {
		t.Errorf("the old holder's release removed the new lease: %+v", h)
	}
	if err := cur.Release(f.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseRefreshRetakesAnExpiredLease(t *testing.T) {
	f := newFixture(t)
	id := NewID()
	l, err := f.store.AcquireLease(f.ctx, id, LeaseOwner{PID: 1, Host: "h"}, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.must(f.rdb.Del(f.ctx, f.store.Keys().Lease(id)).Err()) // as if it expired
	if err := l.Refresh(f.ctx); err != nil {
		t.Fatalf("refresh after expiry: %v", err)
	}
	if h, _ := f.store.LeaseHolder(f.ctx, id); h == nil || h.Token != l.Owner.Token {
		t.Errorf("lease not re-taken: %+v", h)
	}
}
