package town

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestEventJSONHasTTsShape(t *testing.T) {
	// Tinytown's example event. Its ".5Z" is read; tthost writes chrono's AutoSi
	// ".500Z" (0/3/6/9 digits), like every other timestamp.
	ref := `{"event_type":"agent_interrupted","agent_id":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b","old_state":"Working","new_state":"Paused","message":"Agent interrupted (paused)","timestamp":"2026-04-23T22:41:00.5Z"}`
	ev, err := ParseEvent(ref)
	f := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f(err)
	want := TownEvent{Type: EventAgentInterrupted, AgentID: refAgent, OldState: StateWorking.Debug(),
		NewState: StatePaused.Debug(), Message: "Agent interrupted (paused)",
		Timestamp: time.Date(2026, 4, 23, 22, 41, 0, 500_000_000, time.UTC)}
	if ev.Type != want.Type || ev.AgentID != want.AgentID || ev.OldState != "Working" || ev.NewState != "Paused" ||
		ev.Message != want.Message || !ev.Timestamp.Equal(want.Timestamp) {
		t.Fatalf("parsed %+v", ev)
	}
	out, err := want.Marshal()
	f(err)
	if string(out) != `{"event_type":"agent_interrupted","agent_id":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b","old_state":"Working","new_state":"Paused","message":"Agent interrupted (paused)","timestamp":"2026-04-23T22:41:00.500Z"}` {
		t.Fatalf("marshal: %s", out)
	}
	// Every optional field, in order, plus tthost's extra object last.
	full := TownEvent{Type: EventAgentSpawned, AgentID: "a", TaskID: "t", MissionID: "m", OldState: "Idle",
		NewState: "Working", Message: "<m>", Timestamp: want.Timestamp, ParentAgentID: "p", ChildAgentID: "c",
		Scope: "s", SpawnMode: SpawnForkedContext,
		Extra: map[string]any{"tthost": json.RawMessage(`{ "backend" : "codex" }`), "a_first": "<ok>"}}
	out, err = full.Marshal()
	f(err)
	if string(out) != `{"event_type":"agent_spawned","agent_id":"a","task_id":"t","mission_id":"m","old_state":"Idle","new_state":"Working","message":"<m>","timestamp":"2026-04-23T22:41:00.500Z","parent_agent_id":"p","child_agent_id":"c","scope":"s","spawn_mode":"forkedcontext","a_first":"<ok>","tthost":{"backend":"codex"}}` {
		t.Fatalf("full: %s", out)
	}
	back, err := ParseEvent(string(out))
	f(err)
	if raw, _ := back.Extra["tthost"].(json.RawMessage); string(raw) != `{"backend":"codex"}` ||
		back.SpawnMode != SpawnForkedContext || back.ChildAgentID != "c" || len(back.Extra) != 2 {
		t.Fatalf("back: %+v", back)
	}
	again, err := back.Marshal()
	f(err)
	if string(again) != string(out) {
		t.Fatalf("re-marshal: %s", again)
	}
	if _, err := (&TownEvent{Type: EventAgentSpawned, Extra: map[string]any{"scope": 1}}).Marshal(); err == nil {
		t.Fatal("extra field shadowing tt's accepted")
	}
	if ev := NewEvent(EventAgentTurnStarted, "go"); ev.Type != EventAgentTurnStarted || ev.Message != "go" {
		t.Fatalf("NewEvent: %+v", ev)
	}
	if _, err := (&TownEvent{Type: "agent_exploded"}).Marshal(); !errors.Is(err, ErrUnknownEventType) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := ParseEvent(`{"event_type":"agent_spawned","timestamp":"2026-04-23T22:41:00Z"}`); err == nil {
		t.Fatal("missing message accepted")
	}
	if len(EventTypes) != 28 {
		t.Fatalf("%d event types", len(EventTypes))
	}
}

func TestEmitWritesTheTownAgentParentChildAndMissionStreams(t *testing.T) {
	fx := newFixture(t)
	k := fx.store.Keys()
	agent, parent, child, mission := NewID(), NewID(), NewID(), NewID()
	fx.must(fx.store.Emit(fx.ctx, TownEvent{Type: EventTaskDelegated, AgentID: agent, ParentAgentID: parent,
		ChildAgentID: child, MissionID: mission, Message: "delegated"}))
	fx.must(fx.store.Emit(fx.ctx, TownEvent{Type: EventAgentStopped, AgentID: agent, ParentAgentID: agent,
		ChildAgentID: agent, Message: "once per stream"}))
	for key, want := range map[string]int64{k.Events(): 2, k.EventsAgent(agent): 2, k.EventsAgent(parent): 1,
		k.EventsAgent(child): 1, k.EventsMission(mission): 1} {
		if n, _ := fx.rdb.XLen(fx.ctx, key).Result(); n != want {
			t.Errorf("%s: %d entries, want %d", key, n, want)
		}
	}
	msgs, err := fx.rdb.XRange(fx.ctx, k.Events(), "-", "+").Result()
	fx.must(err)
	if len(msgs[0].Values) != 2 || msgs[0].Values["event_type"] != "task_delegated" {
		t.Fatalf("entry fields: %v", msgs[0].Values)
	}
	ev, err := ParseEvent(msgs[0].Values["data"].(string))
	fx.must(err)
	if ev.Timestamp.IsZero() || ev.MissionID != mission {
		t.Fatalf("data: %+v", ev)
	}
	if err := fx.store.Emit(fx.ctx, TownEvent{Type: "made_up", Message: "x"}); !errors.Is(err, ErrUnknownEventType) {
		t.Fatalf("unknown type emitted: %v", err)
	}
}

func TestEmitTrimsStreamsApproximately(t *testing.T) {
	fx := newFixture(t)
	agent := NewID()
	for i := 0; i < 1300; i++ {
		ev := TownEvent{Type: EventAgentAssistantDelta, Message: "delta"}
		if i < 400 {
			ev.AgentID = agent
		}
		fx.must(fx.store.Emit(fx.ctx, ev))
	}
	// "~" trims whole stream nodes (100 entries by default), so lengths are
	// at least the limit and less than limit + node size.
	if n, _ := fx.rdb.XLen(fx.ctx, fx.store.Keys().Events()).Result(); n < 1000 || n >= 1100 {
		t.Errorf("town stream length %d", n)
	}
	if n, _ := fx.rdb.XLen(fx.ctx, fx.store.Keys().EventsAgent(agent)).Result(); n < 100 || n >= 200 {
		t.Errorf("agent stream length %d", n)
	}
}

func TestReadEventsIsExclusiveAndReportsBadEntries(t *testing.T) {
	fx := newFixture(t)
	stream := fx.store.Keys().Events()
	for _, m := range []string{"one", "two", "three"} {
		fx.must(fx.store.Emit(fx.ctx, TownEvent{Type: EventMissionEvent, Message: m}))
	}
	// Entries tt would skip silently: an unknown type and no data.
	fx.must(fx.rdb.XAdd(fx.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"event_type", "future_thing",
		"data", `{"event_type":"future_thing","message":"m","timestamp":"2026-04-23T22:41:00Z"}`}}).Err())
	fx.must(fx.rdb.XAdd(fx.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"event_type", "x"}}).Err())

	all, err := fx.store.ReadEvents(fx.ctx, stream, "", 0)
	fx.must(err)
	if len(all) != 5 || all[0].Event.Message != "one" || all[0].Type != "mission_event" {
		t.Fatalf("all: %+v", all)
	}
	if !errors.Is(all[3].Err, ErrUnknownEventType) || all[3].Event != nil || all[4].Err == nil {
		t.Fatalf("bad entries: %+v %+v", all[3], all[4])
	}
	after, err := fx.store.ReadEvents(fx.ctx, stream, all[0].ID, 1)
	fx.must(err)
	if len(after) != 1 || after[0].Event.Message != "two" {
		t.Fatalf("after first: %+v", after)
	}
	last, err := fx.store.LastEventID(fx.ctx, stream)
	fx.must(err)
	if last != all[4].ID {
		t.Fatalf("last id %s", last)
	}
	none, err := fx.store.ReadEvents(fx.ctx, stream, last, 10)
	fx.must(err)
	if len(none) != 0 {
		t.Fatalf("after last: %d", len(none))
	}
}

func TestFollowEventsDeliversNewEntriesOnceUntilCancelled(t *testing.T) {
	fx := newFixture(t)
	stream := fx.store.Keys().Events()
	fx.must(fx.store.Emit(fx.ctx, TownEvent{Type: EventMissionEvent, Message: "old"}))

	// Resolve "now" before starting, so no entry can slip in between.
	from, err := fx.store.LastEventID(fx.ctx, stream)
	fx.must(err)
	ctx, cancel := context.WithCancel(fx.ctx)
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- fx.store.FollowEvents(ctx, stream, from, func(e EventEntry) error {
			got <- e.Event.Message
			return nil
		})
	}()
	writer := New(fx.client(), testTown)
	for _, m := range []string{"a", "b", "c"} {
		fx.must(writer.Emit(fx.ctx, TownEvent{Type: EventMissionEvent, Message: m}))
	}
	for _, want := range []string{"a", "b", "c"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-fx.ctx.Done():
			t.Fatal("follower saw nothing")
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("follow ended with %v", err)
		}
	case <-fx.ctx.Done():
		t.Fatal("follower ignored cancellation")
	}
	if len(got) != 0 {
		t.Fatalf("duplicates: %d more", len(got))
	}
}
