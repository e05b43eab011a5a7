package town

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWantedAgentsRoundTripAndBadRecordsAreLeftAlone(t *testing.T) {
	f := newFixture(t)
	a := f.agent("backend")
	f.must(f.store.Want(f.ctx, WantedAgent{ID: a.ID, Name: a.Name, CLI: "codex", MaxRounds: 7, By: "spawn"}))
	f.must(f.rdb.HSet(f.ctx, f.store.Keys().Wanted(), "not-an-id", "{").Err())

	got, bad, err := f.store.WantedAgents(f.ctx)
	f.must(err)
	if len(got) != 1 || got[a.ID].Name != "backend" || got[a.ID].MaxRounds != 7 || got[a.ID].CLI != "codex" || got[a.ID].Since.IsZero() {
		t.Fatalf("wanted = %+v, want backend/codex/7 with a since time", got)
	}
	if len(bad) != 1 || !strings.Contains(bad[0].Error(), "not-an-id") {
		t.Fatalf("bad = %v, want one error naming not-an-id", bad)
	}
	if n, _ := f.rdb.HLen(f.ctx, f.store.Keys().Wanted()).Result(); n != 2 {
		t.Fatalf("the bad record was removed: %d records left, want 2", n)
	}
	ok, err := f.store.Unwant(f.ctx, a.ID)
	f.must(err)
	if !ok {
		t.Fatal("Unwant of a wanted agent reported false")
	}
	if w, _ := f.store.IsWanted(f.ctx, a.ID); w {
		t.Fatal("the agent is still wanted after Unwant")
	}
}

func TestHostBeatSaysWhetherTheLivenessKeyExpired(t *testing.T) {
	f := newFixture(t)
	rec := HostRecord{ID: "h1", Hostname: "box", PID: 42, Version: "v1", Capacity: 10, Labels: map[string]string{"cli": "codex"}}
	existed, err := f.store.HostBeat(f.ctx, rec, time.Minute)
	f.must(err)
	if existed {
		t.Fatal("the first heartbeat reported an existing liveness key")
	}
	existed, err = f.store.HostBeat(f.ctx, rec, time.Minute)
	f.must(err)
	if !existed {
		t.Fatal("the second heartbeat did not find the liveness key")
	}
	ttl, _ := f.rdb.PTTL(f.ctx, f.store.Keys().HostAlive("h1")).Result()
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("liveness TTL = %s, want (0, 1m]", ttl)
	}
	f.must(f.rdb.Del(f.ctx, f.store.Keys().HostAlive("h1")).Err()) // as if it expired
	hosts, bad, err := f.store.Hosts(f.ctx)
	f.must(err)
	if len(bad) != 0 || len(hosts) != 1 || hosts[0].Alive || hosts[0].Capacity != 10 || hosts[0].LeaseTTL() != time.Minute {
		t.Fatalf("hosts = %+v (bad %v), want h1 gone with capacity 10 and TTL 1m", hosts, bad)
	}
	if alive, _ := f.store.AliveServeHosts(f.ctx, map[string]string{"cli": "codex"}); len(alive) != 0 {
		t.Fatalf("a host whose liveness expired counts as alive: %+v", alive)
	}
	existed, err = f.store.HostBeat(f.ctx, rec, time.Minute)
	f.must(err)
	if existed {
		t.Fatal("a heartbeat after expiry reported the key as existing: the host would not check its leases")
	}
	if alive, _ := f.store.AliveServeHosts(f.ctx, map[string]string{"cli": "claude"}); len(alive) != 0 {
		t.Fatalf("a host labelled cli=codex was offered a claude agent: %+v", alive)
	}
	if alive, _ := f.store.AliveServeHosts(f.ctx, map[string]string{"cli": "codex"}); len(alive) != 1 {
		t.Fatalf("the codex host is not offered a codex agent: %+v", alive)
	}
	f.must(f.store.RemoveHost(f.ctx, "h1"))
	if hosts, _, _ := f.store.Hosts(f.ctx); len(hosts) != 0 {
		t.Fatalf("hosts after RemoveHost = %+v", hosts)
	}
}

func TestHostBoundLeaseHasNoExpiryAndIsTakenOnlyFromADeadHost(t *testing.T) {
	f := newFixture(t)
	a := f.agent("backend")
	l1, err := f.store.AcquireLease(f.ctx, a.ID, LeaseOwner{PID: 1, Host: "box", HostID: "h1"}, 0, nil)
	f.must(err)
	if ttl, _ := f.rdb.PTTL(f.ctx, f.store.Keys().Lease(a.ID)).Result(); ttl != -1 {
		t.Fatalf("host-bound lease PTTL = %s, want none (-1)", ttl)
	}
	f.must(l1.Refresh(f.ctx)) // a no-op: the host's heartbeat keeps it
	_, err = f.store.AcquireLease(f.ctx, a.ID, LeaseOwner{PID: 2, Host: "box", HostID: "h2"}, 0, func(o LeaseOwner) bool { return false })
	if !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a live host's lease was taken: %v", err)
	}
	l2, err := f.store.AcquireLease(f.ctx, a.ID, LeaseOwner{PID: 2, Host: "box", HostID: "h2"}, 0, func(o LeaseOwner) bool { return o.HostID == "h1" })
	f.must(err)
	if !l2.TookOver || l2.Previous == nil || l2.Previous.HostID != "h1" {
		t.Fatalf("takeover = %v, previous %+v; want a takeover from h1", l2.TookOver, l2.Previous)
	}
	if _, err := l1.Worker().Intake(f.ctx, IntakeOptions{Full: true}); !errors.Is(err, ErrFenced) {
		t.Fatalf("the dead host's intake after the takeover = %v, want ErrFenced", err)
	}
	owners, err := f.store.LeaseOwners(f.ctx, []string{a.ID, "00000000-0000-0000-0000-000000000000"})
	f.must(err)
	if len(owners) != 1 || owners[a.ID].HostID != "h2" || owners[a.ID].Token != l2.Owner.Token {
		t.Fatalf("owners = %+v, want only the agent, held by h2 with the new token", owners)
	}
}

func TestValidHostID(t *testing.T) {
	for _, id := range []string{"h1", "build-1.example.com", "A_b"} {
		if err := ValidHostID(id); err != nil {
			t.Errorf("ValidHostID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "-x", "a b", "a:b", strings.Repeat("x", 129), "a*"} {
		if err := ValidHostID(id); err == nil {
			t.Errorf("ValidHostID(%q) accepted it", id)
		}
	}
}

func FuzzParseWantedAgent(f *testing.F) {
	id := "0b5c0f4e-8a4c-4b8e-9a57-2f1d8c6a7e10"
	good, _ := json.Marshal(WantedAgent{ID: id, Name: "backend", CLI: "codex", MaxRounds: 3})
	f.Add(id, string(good))
	f.Add(id, "{")
	f.Add(id, `{"id":"`+id+`","name":"","max_rounds":-1}`)
	f.Fuzz(func(t *testing.T, id, raw string) {
		w, err := ParseWantedAgent(id, []byte(raw))
		if err == nil && (w.ID != id || w.Name == "" || w.MaxRounds < 0) {
			t.Fatalf("accepted an invalid record: %+v", w)
		}
	})
}

func FuzzParseHostRecord(f *testing.F) {
	good, _ := json.Marshal(HostRecord{ID: "h1", Capacity: 3, LeaseTTLMillis: 15000})
	f.Add("h1", string(good))
	f.Add("h1", `{"id":"h1","capacity":-1}`)
	f.Add("h1", "null")
	f.Fuzz(func(t *testing.T, id, raw string) {
		r, err := ParseHostRecord(id, []byte(raw))
		if err == nil && (r.ID != id || r.Capacity < 0 || r.Load < 0 || r.LeaseTTLMillis < 0) {
			t.Fatalf("accepted an invalid record: %+v", r)
		}
	})
}
