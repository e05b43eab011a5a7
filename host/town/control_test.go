package town

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestStopFlagIsTTsAndWakesTheWorker(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	f.must(f.store.RequestStop(f.ctx, a.ID))
	k := f.store.Keys()
	if v, _ := f.rdb.Get(f.ctx, k.Stop(a.ID)).Result(); v != "1" {
		t.Fatalf("stop value %q", v)
	}
	if ttl, _ := f.rdb.TTL(f.ctx, k.Stop(a.ID)).Result(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("stop TTL %v", ttl)
	}
	if n, _ := f.rdb.LLen(f.ctx, k.Wake(a.ID)).Result(); n != 1 {
		t.Fatal("stop did not wake the worker")
	}
	if on, err := f.store.StopRequested(f.ctx, a.ID); err != nil || !on {
		t.Fatalf("StopRequested = %v, %v", on, err)
	}
	f.must(f.store.ClearStop(f.ctx, a.ID))
	if on, _ := f.store.StopRequested(f.ctx, a.ID); on {
		t.Fatal("stop not cleared")
	}
	// tt's flag (no wake token) is seen too.
	f.must(f.rdb.SetEx(f.ctx, k.Stop(a.ID), "1", time.Hour).Err())
	if on, _ := f.store.StopRequested(f.ctx, a.ID); !on {
		t.Fatal("tt's stop flag not seen")
	}
}

func TestActivityKeepsTheNewestTenWithATTL(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	for i := 1; i <= 12; i++ {
		f.must(f.store.LogActivity(f.ctx, a.ID, fmt.Sprintf("Round %d: ✅ completed", i)))
	}
	all, err := f.store.Activity(f.ctx, a.ID, 100)
	f.must(err)
	if len(all) != 10 || all[0] != "Round 12: ✅ completed" || all[9] != "Round 3: ✅ completed" {
		t.Fatalf("activity: %v", all)
	}
	top, _ := f.store.Activity(f.ctx, a.ID, 2)
	if !reflect.DeepEqual(top, all[:2]) {
		t.Fatalf("top 2: %v", top)
	}
	if ttl, _ := f.rdb.TTL(f.ctx, f.store.Keys().Activity(a.ID)).Result(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL %v", ttl)
	}
}

func TestControlStateReadsStopAndStateTogether(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	stop, st, err := f.store.ControlState(f.ctx, a.ID)
	if err != nil || stop || st != StateStarting {
		t.Fatalf("fresh: %v %v %v", stop, st, err)
	}
	f.must(f.store.SetAgentState(f.ctx, a.ID, StatePaused))
	f.must(f.store.RequestStop(f.ctx, a.ID))
	stop, st, err = f.store.ControlState(f.ctx, a.ID)
	if err != nil || !stop || st != StatePaused {
		t.Fatalf("paused+stop: %v %v %v", stop, st, err)
	}
	if st, err := f.store.AgentState(f.ctx, a.ID); err != nil || st != StatePaused {
		t.Fatalf("AgentState: %v %v", st, err)
	}
	f.must(f.rdb.HDel(f.ctx, f.store.Keys().Agent(a.ID), "state").Err())
	if st, err := f.store.AgentState(f.ctx, a.ID); err != nil || st != StateStarting {
		t.Fatalf("no state field: %v %v", st, err)
	}
	if _, _, err := f.store.ControlState(f.ctx, NewID()); !errors.Is(err, ErrAgentNotFound) {
		t.Fatalf("missing agent: %v", err)
	}
}
