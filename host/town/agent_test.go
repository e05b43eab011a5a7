package town

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// refAgentHash is Tinytown's HGETALL right after `tt spawn backend --role backend`.
var refAgentHash = [][2]string{
	{"id", "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"},
	{"name", "backend"},
	{"agent_type", "worker"},
	{"state", "starting"},
	{"cli", "codex"},
	{"created_at", "2026-04-23T22:32:34.123456789+00:00"},
	{"last_heartbeat", "2026-04-23T22:32:34.123456789+00:00"},
	{"tasks_completed", "0"},
	{"rounds_completed", "0"},
	{"last_active_at", "2026-04-23T22:32:34.123456789+00:00"},
	{"spawn_mode", "fresh"},
	{"nickname", "Daniel"},
	{"role_id", "backend"},
}

func hsetArgs(pairs [][2]string) []any {
	var args []any
	for _, p := range pairs {
		args = append(args, p[0], p[1])
	}
	return args
}

func TestAgentHashWrittenByTTReadsBack(t *testing.T) {
	f := newFixture(t)
	key := "tt:demo:agent:" + refAgent
	f.must(f.rdb.HSet(f.ctx, key, hsetArgs(refAgentHash)...).Err())

	a, err := f.store.GetAgent(f.ctx, refAgent)
	f.must(err)
	want := &Agent{
		ID: refAgent, Name: "backend", Type: AgentWorker, State: StateStarting, RawState: "starting",
		CLI: "codex", CreatedAt: fixedNow, LastHeartbeat: fixedNow, LastActiveAt: fixedNow,
		SpawnMode: SpawnFresh, Nickname: "Daniel", RoleID: "backend",
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got  %+v\nwant %+v", a, want)
	}
	if a.DisplayLabel() != "Daniel [backend]" || a.ShortID() != "6f1c" {
		t.Errorf("label %q short %q", a.DisplayLabel(), a.ShortID())
	}
}

func TestCreateAgentWritesWhatTTSpawnWrites(t *testing.T) {
	f := newFixture(t, WithClock(func() time.Time { return fixedNow }))
	a, err := f.store.CreateAgent(f.ctx, AgentSpec{ID: strings.ToUpper(refAgent), Name: "backend", CLI: "codex",
		RoleID: "backend", Nickname: "Daniel"})
	f.must(err)
	if a.ID != refAgent {
		t.Fatalf("id %q", a.ID)
	}
	// Same fields, same encodings, same order as tt.
	if got := f.orderedHash("tt:demo:agent:" + refAgent); !reflect.DeepEqual(got, refAgentHash) {
		t.Fatalf("hash:\n got %v\nwant %v", got, refAgentHash)
	}
	// A second create never merges into the existing record.
	if _, err := f.store.CreateAgent(f.ctx, AgentSpec{ID: refAgent, Name: "other", CLI: "x"}); !errors.Is(err, ErrAgentExists) {
		t.Fatalf("duplicate create: %v", err)
	}
}

func TestCreateAgentDefaultsAndRefusals(t *testing.T) {
	f := newFixture(t)
	a := f.agent("worker-1")
	if a.Nickname != Nickname(a.ID) || a.Nickname == "" || a.State != StateStarting || a.SpawnMode != SpawnFresh {
		t.Fatalf("defaults: %+v", a)
	}
	got, err := f.store.GetAgent(f.ctx, a.ID)
	f.must(err)
	if len(got.Problems) != 0 || got.RoleID != "" || got.CurrentTask != "" || got.ParentAgentID != "" {
		t.Fatalf("record: %+v", got)
	}
	for _, name := range []string{"supervisor", " Conductor "} {
		if _, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: name, CLI: "codex"}); !errors.Is(err, ErrReservedName) {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: " ", CLI: "codex"}); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: "x", CLI: "codex", ParentAgentID: "nope"}); !errors.Is(err, ErrInvalidID) {
		t.Errorf("bad parent: %v", err)
	}
}

func TestNicknameUsesTTsIndexFormula(t *testing.T) {
	// bytes 0x6f 0x1c: (111*256+28) % 400 = 44, the boys' list.
	if got := Nickname(refAgent); got != boysNames[44] {
		t.Errorf("got %q", got)
	}
	// 0x00 0xc8 = 200: the first girls' name.
	if got := Nickname("00c80000-0000-4000-8000-000000000000"); got != girlsNames[0] {
		t.Errorf("got %q", got)
	}
	seen := map[string]bool{}
	for _, n := range append(boysNames[:], girlsNames[:]...) {
		if n == "" || strings.TrimSpace(n) != n || seen[n] {
			t.Errorf("bad or duplicate name %q", n)
		}
		seen[n] = true
	}
}

func TestBadStoredValuesAreReportedNotHidden(t *testing.T) {
	f := newFixture(t)
	key := "tt:demo:agent:" + refAgent
	f.must(f.rdb.HSet(f.ctx, key, "id", refAgent, "name", "x", "agent_type", "robot", "state", "Idle",
		"cli", "codex", "created_at", "2026-04-23 22:32:34", "last_heartbeat", "garbage",
		"tasks_completed", "-1", "rounds_completed", "3", "spawn_mode", "forked_context",
		"current_task", "not-a-uuid").Err())
	a, err := f.store.GetAgent(f.ctx, refAgent)
	f.must(err)
	if a.State != StateStarting || a.RawState != "Idle" || a.Type != AgentWorker || a.SpawnMode != SpawnFresh {
		t.Errorf("defaults: %+v", a)
	}
	if !a.CreatedAt.IsZero() || !a.LastHeartbeat.IsZero() || !a.LastActiveAt.IsZero() {
		t.Errorf("bad timestamps must read as zero, never now: %+v", a)
	}
	if a.RoundsCompleted != 3 || a.TasksCompleted != 0 || a.CurrentTask != "not-a-uuid" {
		t.Errorf("fields: %+v", a)
	}
	var fields []string
	for _, p := range a.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"agent_type", "state", "created_at", "last_heartbeat", "tasks_completed", "spawn_mode", "current_task"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("problems %v, want %v", fields, want)
	}

	// Missing hash and missing/invalid id are errors.
	if _, err := f.store.GetAgent(f.ctx, NewID()); !errors.Is(err, ErrAgentNotFound) {
		t.Errorf("missing: %v", err)
	}
	f.must(f.rdb.HSet(f.ctx, key, "id", "zzz").Err())
	if _, err := f.store.GetAgent(f.ctx, refAgent); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("bad id: %v", err)
	}
	f.must(f.rdb.HDel(f.ctx, key, "id").Err())
	if _, err := f.store.GetAgent(f.ctx, refAgent); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("no id: %v", err)
	}
}

func TestListAgentsSkipsWhatItCannotRead(t *testing.T) {
	f := newFixture(t)
	a1 := f.agent("one")
	a2 := f.agent("two")
	junk := NewID()
	f.must(f.rdb.Set(f.ctx, "tt:demo:agent:"+junk, "a string", 0).Err())         // not a hash
	f.must(f.rdb.HSet(f.ctx, "tt:demo:agent:"+NewID(), "name", "noid").Err())    // no id
	f.must(f.rdb.HSet(f.ctx, "tt:demo:agent:x", "id", "bad", "name", "x").Err()) // bad id
	// An agent of the town "demo:agent", whose key also matches tt:demo:agent:*.
	other := NewID()
	f.must(f.rdb.HSet(f.ctx, "tt:demo:agent:agent:"+other, hsetArgs(refAgentHash)...).Err())
	f.must(f.rdb.HSet(f.ctx, "tt:demo:agent:agent:"+other, "id", other).Err())
	// An agent of another town.
	f.must(f.rdb.HSet(f.ctx, "tt:else:agent:"+refAgent, hsetArgs(refAgentHash)...).Err())

	list, err := f.store.ListAgents(f.ctx)
	f.must(err)
	if len(list) != 2 || list[0].ID != a1.ID || list[1].ID != a2.ID {
		t.Fatalf("got %d agents: %+v", len(list), list)
	}
}

func TestAgentUpdatesWriteSingleFieldsOfExistingAgentsOnly(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	key := f.store.Keys().Agent(a.ID)
	// A concurrent whole-record writer (tt) set a field we do not touch.
	f.must(f.rdb.HSet(f.ctx, key, "role_id", "set-by-tt").Err())

	f.must(f.store.SetAgentState(f.ctx, a.ID, StatePaused))
	ok, err := f.store.SetAgentStateUnless(f.ctx, a.ID, StateIdle, StatePaused)
	if err != nil || ok {
		t.Fatalf("idle unless paused: %v %v", ok, err)
	}
	task := NewID()
	f.must(f.store.SetCurrentTask(f.ctx, a.ID, task))
	f.must(f.store.SetRuntimeSessionID(f.ctx, a.ID, "thread-1"))
	f.must(f.store.IncrRoundsCompleted(f.ctx, a.ID))
	f.must(f.store.IncrRoundsCompleted(f.ctx, a.ID))
	f.must(f.store.IncrTasksCompleted(f.ctx, a.ID))
	got, err := f.store.GetAgent(f.ctx, a.ID)
	f.must(err)
	if got.State != StatePaused || got.CurrentTask != task || got.RuntimeSessionID != "thread-1" ||
		got.RoundsCompleted != 2 || got.TasksCompleted != 1 || got.RoleID != "set-by-tt" {
		t.Fatalf("after updates: %+v", got)
	}

	if cleared, err := f.store.ClearCurrentTaskIf(f.ctx, a.ID, NewID()); err != nil || cleared {
		t.Fatalf("clear other task: %v %v", cleared, err)
	}
	if cleared, err := f.store.ClearCurrentTaskIf(f.ctx, a.ID, strings.ToUpper(task)); err != nil || !cleared {
		t.Fatalf("clear own task: %v %v", cleared, err)
	}
	f.must(f.store.ClearRuntimeSessionID(f.ctx, a.ID))
	for _, fld := range []string{"current_task", "runtime_session_id"} {
		if n, _ := f.rdb.HExists(f.ctx, key, fld).Result(); n {
			t.Errorf("%s not removed", fld)
		}
	}

	written, err := f.store.UpdateAgent(f.ctx, a.ID, AgentUpdate{State: StateIdle, UnlessState: []AgentState{StateWorking}, Heartbeat: true, Active: true})
	if err != nil || !written {
		t.Fatalf("update: %v %v", written, err)
	}
	// At replaces the store's clock for the times written.
	at := time.Date(2030, 1, 2, 3, 4, 5, 600000000, time.FixedZone("x", 3600))
	if _, err := f.store.UpdateAgent(f.ctx, a.ID, AgentUpdate{Heartbeat: true, Active: true, At: at}); err != nil {
		t.Fatal(err)
	}
	for _, fld := range []string{"last_heartbeat", "last_active_at"} {
		if v, _ := f.rdb.HGet(f.ctx, key, fld).Result(); v != FormatHashTime(at) || !strings.HasPrefix(v, "2030-01-02T02:04:05.6") {
			t.Errorf("%s = %q, want %q", fld, v, FormatHashTime(at))
		}
	}

	// A corrupt counter restarts instead of failing the update halfway.
	f.must(f.rdb.HSet(f.ctx, key, "rounds_completed", "x").Err())
	f.must(f.store.IncrRoundsCompleted(f.ctx, a.ID))
	if v, _ := f.rdb.HGet(f.ctx, key, "rounds_completed").Result(); v != "1" {
		t.Errorf("rounds_completed = %q", v)
	}

	// Raw fields: validated names; "" removes optional ones.
	f.must(f.store.SetAgentFields(f.ctx, a.ID, map[string]string{"state": "working", "nickname": ""}))
	if err := f.store.SetAgentFields(f.ctx, a.ID, map[string]string{"colour": "red"}); !errors.Is(err, ErrUnknownField) {
		t.Errorf("unknown field: %v", err)
	}
	if err := f.store.SetAgentFields(f.ctx, a.ID, map[string]string{"id": NewID()}); err == nil {
		t.Error("id change accepted")
	}
	if err := f.store.SetAgentFields(f.ctx, a.ID, map[string]string{"state": ""}); err == nil {
		t.Error("empty required field accepted")
	}

	// Updates never create a partial hash for a deleted agent.
	gone := NewID()
	for name, err := range map[string]error{
		"state":     f.store.SetAgentState(f.ctx, gone, StateIdle),
		"heartbeat": f.store.Heartbeat(f.ctx, gone),
		"rounds":    f.store.IncrRoundsCompleted(f.ctx, gone),
		"fields":    f.store.SetAgentFields(f.ctx, gone, map[string]string{"state": "idle"}),
	} {
		if !errors.Is(err, ErrAgentNotFound) {
			t.Errorf("%s on missing agent: %v", name, err)
		}
	}
	if n, _ := f.rdb.Exists(f.ctx, f.store.Keys().Agent(gone)).Result(); n != 0 {
		t.Error("partial hash created")
	}
}

func TestConcurrentCounterUpdatesAreNotLost(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = f.store.IncrRoundsCompleted(f.ctx, a.ID)
		}()
	}
	wg.Wait()
	got, err := f.store.GetAgent(f.ctx, a.ID)
	f.must(err)
	if got.RoundsCompleted != 20 {
		t.Fatalf("rounds_completed = %d", got.RoundsCompleted)
	}
}

func TestResolveAgent(t *testing.T) {
	f := newFixture(t)
	backend, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: "backend", CLI: "codex", Nickname: "Daniel", RoleID: "api"})
	f.must(err)
	front, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: "frontend", CLI: "codex", Nickname: "Ruth"})
	f.must(err)
	twinA, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: "twin", CLI: "codex", Nickname: "Ann"})
	f.must(err)
	twinB, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: "twin", CLI: "codex", Nickname: "Bob"})
	f.must(err)

	for _, tc := range []struct {
		ref, want string
	}{
		{" Supervisor", SupervisorID},
		{"conductor", SupervisorID},
		{backend.ID, backend.ID},
		{strings.ToUpper(backend.ID), backend.ID},
		{"BACKEND", backend.ID},
		{"daniel", backend.ID},
		{"Daniel [api]", backend.ID},
		{"ruth [frontend]", front.ID}, // no role: the name in brackets
		{"ann", twinA.ID},
	} {
		r, err := f.store.ResolveAgent(f.ctx, tc.ref)
		if err != nil || r.ID != tc.want {
			t.Errorf("ResolveAgent(%q) = %v, %v; want %s", tc.ref, r.ID, err, tc.want)
		}
		if tc.want == SupervisorID && r.Agent != nil {
			t.Errorf("supervisor has no record")
		}
	}
	// The short id resolves unless another agent happens to share it.
	shared := 0
	for _, id := range []string{front.ID, twinA.ID, twinB.ID} {
		if ShortID(id) == backend.ShortID() {
			shared++
		}
	}
	if r, err := f.store.ResolveAgent(f.ctx, strings.ToUpper(backend.ShortID())); shared == 0 && (err != nil || r.ID != backend.ID) {
		t.Errorf("short id resolved to %s, %v", r.ID, err)
	}

	_, err = f.store.ResolveAgent(f.ctx, "twin")
	if !errors.Is(err, ErrAmbiguousAgent) || !strings.Contains(err.Error(), "Ann [twin]") || !strings.Contains(err.Error(), "Bob [twin]") {
		t.Errorf("ambiguous: %v", err)
	}
	_, err = f.store.ResolveAgent(f.ctx, "nobody")
	if !errors.Is(err, ErrAgentNotFound) || !strings.Contains(err.Error(), "Daniel [api]") {
		t.Errorf("not found: %v", err)
	}
	if _, err := f.store.ResolveAgent(f.ctx, NewID()); !errors.Is(err, ErrAgentNotFound) {
		t.Errorf("unknown uuid: %v", err)
	}
	// Only ASCII folds (Rust's eq_ignore_ascii_case).
	if asciiEqualFold("É", "é") || !asciiEqualFold("AbC", "aBc") {
		t.Error("asciiEqualFold")
	}
}

func TestDeleteAgentRemovesItsKeysButNotItsEvents(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	f.must(f.store.Send(f.ctx, NewTask(SupervisorID, a.ID, "x")))
	f.must(f.store.LogActivity(f.ctx, a.ID, "hello"))
	f.must(f.store.Emit(f.ctx, TownEvent{Type: EventAgentSpawned, AgentID: a.ID, Message: "m"}))
	f.must(f.store.DeleteAgent(f.ctx, a.ID))
	keys, err := f.rdb.Keys(f.ctx, "tt:demo:*").Result()
	f.must(err)
	for _, k := range keys {
		if strings.Contains(k, a.ID) && !strings.HasPrefix(k, "tt:demo:events:agent:") {
			t.Errorf("left behind: %s", k)
		}
	}
}
