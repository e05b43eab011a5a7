package town

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

const refTask = "0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21"

// A task hash as tt writes it after `tt assign`.
var refTaskHash = [][2]string{
	{"id", refTask},
	{"description", "Build the API\nwith tests"},
	{"state", "assigned"},
	{"created_at", "2026-04-23T22:32:34.123456789+00:00"},
	{"updated_at", "2026-04-23T22:32:34.123456789+00:00"},
	{"tags", `["backend","mission:x"]`},
	{"assigned_to", refAgent},
}

func TestTaskHashWrittenByTTReadsBackAndCreateTaskMatchesIt(t *testing.T) {
	f := newFixture(t, WithClock(func() time.Time { return fixedNow }))
	f.must(f.rdb.HSet(f.ctx, "tt:demo:task:"+refTask, hsetArgs(refTaskHash)...).Err())
	got, err := f.store.GetTask(f.ctx, refTask)
	f.must(err)
	want := &Task{ID: refTask, Description: "Build the API\nwith tests", State: TaskAssigned, RawState: "assigned",
		CreatedAt: fixedNow, UpdatedAt: fixedNow, Tags: []string{"backend", "mission:x"}, AssignedTo: refAgent}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	other := "1b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21"
	_, err = f.store.CreateTask(f.ctx, TaskSpec{ID: other, Description: "Build the API\nwith tests",
		Tags: []string{"backend", "mission:x"}, AssignedTo: refAgent})
	f.must(err)
	wantHash := append([][2]string{{"id", other}}, refTaskHash[1:]...)
	if h := f.orderedHash("tt:demo:task:" + other); !reflect.DeepEqual(h, wantHash) {
		t.Fatalf("hash:\n got %v\nwant %v", h, wantHash)
	}
	if _, err := f.store.CreateTask(f.ctx, TaskSpec{ID: other}); !errors.Is(err, ErrTaskExists) {
		t.Fatalf("duplicate: %v", err)
	}
	plain, err := f.store.CreateTask(f.ctx, TaskSpec{Description: "x"})
	f.must(err)
	if h := f.orderedHash(f.store.Keys().Task(plain.ID)); h[2][1] != "pending" || h[5][1] != "[]" || len(h) != 6 {
		t.Fatalf("new task: %v", h)
	}
}

func TestTaskReadingQuirks(t *testing.T) {
	f := newFixture(t)
	key := "tt:demo:task:" + refTask
	f.must(f.rdb.HSet(f.ctx, key, "id", refTask, "description", "d", "state", "in_flight",
		"created_at", "2026-04-23T22:32:34Z", "updated_at", "bad", "tags", "backend,api").Err())
	got, err := f.store.GetTask(f.ctx, refTask)
	f.must(err)
	if got.State != TaskRunning || got.RawState != "in_flight" {
		t.Errorf("in_flight alias: %v", got.State)
	}
	if got.Tags == nil || len(got.Tags) != 0 {
		t.Errorf("unparseable tags must read as empty: %#v", got.Tags)
	}
	if !got.UpdatedAt.IsZero() || len(got.Problems) != 2 {
		t.Errorf("problems: %+v", got.Problems)
	}
	if _, err := f.store.GetTask(f.ctx, NewID()); !errors.Is(err, ErrTaskNotFound) {
		t.Errorf("missing: %v", err)
	}
	if st, ok := ParseTaskState("Running"); ok || st != TaskPending {
		t.Errorf("unknown state: %v %v", st, ok)
	}
}

func TestTaskTransitionsWriteSingleFields(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	task, err := f.store.CreateTask(f.ctx, TaskSpec{Description: "d"})
	f.must(err)
	key := f.store.Keys().Task(task.ID)

	f.must(f.store.AssignTask(f.ctx, task.ID, a.ID))
	started, err := f.store.StartTask(f.ctx, task.ID)
	if err != nil || !started {
		t.Fatalf("start: %v %v", started, err)
	}
	if started, _ := f.store.StartTask(f.ctx, task.ID); started {
		t.Fatal("started twice")
	}
	got, _ := f.store.GetTask(f.ctx, task.ID)
	if got.State != TaskRunning || got.AssignedTo != a.ID || got.StartedAt.IsZero() {
		t.Fatalf("running: %+v", got)
	}
	back, err := f.store.ReturnToAssigned(f.ctx, task.ID)
	if err != nil || !back {
		t.Fatalf("return: %v %v", back, err)
	}
	if back, _ := f.store.ReturnToAssigned(f.ctx, task.ID); back {
		t.Fatal("returned a task that was not running")
	}
	f.must(f.store.RequeueTask(f.ctx, task.ID))
	got, _ = f.store.GetTask(f.ctx, task.ID)
	if got.State != TaskPending || got.AssignedTo != "" || !got.StartedAt.IsZero() {
		t.Fatalf("requeued: %+v", got)
	}
	for _, fld := range []string{"assigned_to", "started_at"} {
		if ok, _ := f.rdb.HExists(f.ctx, key, fld).Result(); ok {
			t.Errorf("%s not removed", fld)
		}
	}
	f.must(f.store.CancelTask(f.ctx, task.ID, "not needed"))
	got, _ = f.store.GetTask(f.ctx, task.ID)
	if got.State != TaskCancelled || got.Result != "not needed" {
		t.Fatalf("cancelled: %+v", got)
	}
	if started, _ := f.store.StartTask(f.ctx, task.ID); started {
		t.Fatal("started a terminal task")
	}
	f.must(f.store.FailTask(f.ctx, task.ID, "boom"))
	if err := f.store.AssignTask(f.ctx, NewID(), a.ID); !errors.Is(err, ErrTaskNotFound) {
		t.Fatalf("assign missing task: %v", err)
	}
	f.must(f.store.DeleteTask(f.ctx, task.ID))
}

func TestCompleteTaskCountsOnceAndClearsOnlyItsOwnPointer(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	task, err := f.store.CreateTask(f.ctx, TaskSpec{Description: "d", AssignedTo: a.ID})
	f.must(err)
	f.must(f.store.SetCurrentTask(f.ctx, a.ID, task.ID))

	c, err := f.store.CompleteTask(f.ctx, task.ID, "")
	f.must(err)
	if c.WasTerminal || !c.AgentUpdated || c.Task.State != TaskCompleted || c.Task.Result != "Completed" || c.Task.CompletedAt.IsZero() {
		t.Fatalf("completion: %+v %+v", c, c.Task)
	}
	c, err = f.store.CompleteTask(f.ctx, task.ID, "again")
	f.must(err)
	if !c.WasTerminal || c.Task.Result != "again" {
		t.Fatalf("second completion: %+v", c)
	}
	got, _ := f.store.GetAgent(f.ctx, a.ID)
	if got.TasksCompleted != 1 || got.CurrentTask != "" {
		t.Fatalf("agent: tasks_completed=%d current=%q", got.TasksCompleted, got.CurrentTask)
	}

	// Concurrent completions of a fresh task count it once.
	t2, err := f.store.CreateTask(f.ctx, TaskSpec{Description: "d2", AssignedTo: a.ID})
	f.must(err)
	other := NewID()
	f.must(f.store.SetCurrentTask(f.ctx, a.ID, other))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = New(f.rdb, testTown).CompleteTask(f.ctx, t2.ID, "done")
		}()
	}
	wg.Wait()
	got, _ = f.store.GetAgent(f.ctx, a.ID)
	if got.TasksCompleted != 2 || got.CurrentTask != other {
		t.Fatalf("agent: tasks_completed=%d current=%q", got.TasksCompleted, got.CurrentTask)
	}

	// An assignee that no longer exists is not recreated.
	gone := NewID()
	t3, err := f.store.CreateTask(f.ctx, TaskSpec{Description: "d3", AssignedTo: gone})
	f.must(err)
	c, err = f.store.CompleteTask(f.ctx, t3.ID, "x")
	f.must(err)
	if c.AgentUpdated {
		t.Fatal("missing agent updated")
	}
	if n, _ := f.rdb.Exists(f.ctx, f.store.Keys().Agent(gone)).Result(); n != 0 {
		t.Fatal("partial agent hash created")
	}
	if _, err := f.store.CompleteTask(f.ctx, NewID(), "x"); !errors.Is(err, ErrTaskNotFound) {
		t.Fatalf("missing task: %v", err)
	}
}

func TestCurrentTaskFor(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	if cur, err := f.store.CurrentTaskFor(f.ctx, a.ID); err != nil || cur != nil {
		t.Fatalf("none: %v %v", cur, err)
	}
	t1, _ := f.store.CreateTask(f.ctx, TaskSpec{Description: "one", AssignedTo: a.ID})
	done, _ := f.store.CreateTask(f.ctx, TaskSpec{Description: "done", AssignedTo: a.ID})
	_, err := f.store.CompleteTask(f.ctx, done.ID, "ok")
	f.must(err)
	if cur, err := f.store.CurrentTaskFor(f.ctx, a.ID); err != nil || cur == nil || cur.ID != t1.ID {
		t.Fatalf("single non-terminal: %v %v", cur, err)
	}
	t2, _ := f.store.CreateTask(f.ctx, TaskSpec{Description: "two", AssignedTo: a.ID})
	if cur, _ := f.store.CurrentTaskFor(f.ctx, a.ID); cur != nil {
		t.Fatalf("two candidates must give none: %v", cur)
	}
	f.must(f.store.SetCurrentTask(f.ctx, a.ID, t2.ID))
	if cur, _ := f.store.CurrentTaskFor(f.ctx, a.ID); cur == nil || cur.ID != t2.ID {
		t.Fatalf("current_task: %v", cur)
	}
	f.must(f.store.SetCurrentTask(f.ctx, a.ID, NewID()))
	if cur, err := f.store.CurrentTaskFor(f.ctx, a.ID); err != nil || cur != nil {
		t.Fatalf("dangling current_task: %v %v", cur, err)
	}
}

func TestAssignCreatesTheTaskAndSendsTaskAssign(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	task, msg, err := f.store.Assign(f.ctx, a.ID, "write docs", []string{"docs"})
	f.must(err)
	if task.State != TaskAssigned || task.AssignedTo != a.ID || msg.TaskID != task.ID || msg.From != SupervisorID {
		t.Fatalf("task %+v msg %+v", task, msg)
	}
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 1 || res.Moved[0].Raw != msg.Raw || res.Moved[0].Msg.Type != TypeTaskAssign {
		t.Fatalf("inbox: %+v", res.Moved)
	}
	got, err := f.store.GetTask(f.ctx, task.ID)
	f.must(err)
	if got.Description != "write docs" || !got.HasTag("docs") {
		t.Fatalf("stored: %+v", got)
	}
	all, err := f.store.ListTasks(f.ctx)
	f.must(err)
	if len(all) != 1 {
		t.Fatalf("list: %d", len(all))
	}
}
