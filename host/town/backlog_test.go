package town

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestRoleComesFromTheAgentName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want BacklogRole
	}{
		{"frontend", RoleFrontend}, {"UI-dev", RoleFrontend}, {"webby", RoleFrontend}, {"client", RoleFrontend},
		{"backend", RoleBackend}, {"API", RoleBackend}, {"server-1", RoleBackend},
		{"tester", RoleTester}, {"qa", RoleTester},
		{"reviewer", RoleReviewer}, {"auditor", RoleReviewer},
		{"docs", RoleDocs}, {"writer", RoleDocs},
		{"devops", RoleDevops}, {"ops", RoleDevops}, {"infra", RoleDevops}, {"deployer", RoleDevops},
		{"security", RoleSecurity}, {"sec", RoleSecurity}, {"SEC", RoleSecurity},
		{"secretary", RoleGeneral}, {"worker", RoleGeneral}, {"agent", RoleGeneral},
		{"build-guide", RoleFrontend}, // "ui" is a substring: first rule wins
	} {
		if got := RoleForName(tc.name); got != tc.want {
			t.Errorf("RoleForName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRoleMatchingAndHints(t *testing.T) {
	task := func(desc string, tags ...string) *Task { return &Task{Description: desc, Tags: tags} }
	for _, tc := range []struct {
		role BacklogRole
		task *Task
		want bool
	}{
		// the unit tests in tt's main.rs
		{RoleReviewer, task("Implement endpoint", "backend", "frontend", "data"), false},
		{RoleReviewer, task("Look over the change", "review", "security"), true},
		{RoleBackend, task("Something", "backend", "data"), true},
		{RoleForName("worker"), task("anything at all"), true},
		{RoleForName("agent"), task("anything at all"), true},
		// tags match exactly (case-insensitive), descriptions by substring
		{RoleBackend, task("x", "Backend"), true},
		{RoleBackend, task("x", "backends"), false},
		{RoleFrontend, task("Write the user guide"), true}, // "ui" in "guide"
		{RoleDevops, task("record the decision"), true},    // "ci" in "decision"
		{RoleDocs, task("fix the parser", "code"), false},
	} {
		if got := tc.role.Matches(tc.task); got != tc.want {
			t.Errorf("%v matches %q %v = %v", tc.role, tc.task.Description, tc.task.Tags, got)
		}
	}
	hints := map[BacklogRole]string{
		RoleFrontend: "Prioritize tasks tagged frontend/ui/web/client.",
		RoleBackend:  "Prioritize tasks tagged backend/api/server/database.",
		RoleTester:   "Prioritize tasks tagged test/qa/validation/regression.",
		RoleReviewer: "Prioritize review/quality/security validation tasks.",
		RoleDocs:     "Prioritize documentation/spec/readme tasks.",
		RoleDevops:   "Prioritize infrastructure/ci/deploy/reliability tasks.",
		RoleSecurity: "Prioritize security/vulnerability/hardening tasks.",
		RoleGeneral:  "Prioritize tasks matching your current specialization and capabilities.",
	}
	for r, h := range hints {
		if r.Hint() != h {
			t.Errorf("%v hint %q", r, r.Hint())
		}
	}
	if got := SplitTags(" a, b ,,c "); fmt.Sprint(got) != "[a b c]" {
		t.Errorf("SplitTags: %v", got)
	}
}

func TestBacklogAddListAndRemove(t *testing.T) {
	f := newFixture(t)
	t1, err := f.store.BacklogAdd(f.ctx, "first", []string{"backend"})
	f.must(err)
	t2, err := f.store.BacklogAdd(f.ctx, "second", nil)
	f.must(err)
	ghost := NewID()
	f.must(f.rdb.RPush(f.ctx, f.store.Keys().Backlog(), ghost).Err()) // id without a task
	list, err := f.store.BacklogList(f.ctx)
	f.must(err)
	if len(list) != 3 || list[0].TaskID != t1.ID || list[0].Task.State != TaskPending || list[1].TaskID != t2.ID || list[2].Task != nil {
		t.Fatalf("list: %+v", list)
	}
	removed, err := f.store.BacklogRemove(f.ctx, t2.ID)
	if err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if _, err := f.store.GetTask(f.ctx, t2.ID); !errors.Is(err, ErrTaskNotFound) {
		t.Fatal("task hash not deleted")
	}
	if removed, _ := f.store.BacklogRemove(f.ctx, t2.ID); removed {
		t.Fatal("removed twice")
	}
}

func TestBacklogClaimRaceHasExactlyOneWinner(t *testing.T) {
	f := newFixture(t)
	a, b := f.agent("alpha"), f.agent("beta")
	task, err := f.store.BacklogAdd(f.ctx, "contested", nil)
	f.must(err)

	agents := []*Agent{a, b}
	errs := make([]error, 2)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range agents {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := New(f.client(), testTown) // two separate processes, in effect
			<-start
			_, _, errs[i] = s.BacklogClaim(f.ctx, task.ID, agents[i].ID)
		}(i)
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != -1 {
				t.Fatal("two winners")
			}
			winner = i
		case !errors.Is(err, ErrNotInBacklog):
			t.Fatalf("loser error: %v", err)
		}
	}
	if winner == -1 {
		t.Fatal("no winner")
	}
	got, _ := f.store.GetTask(f.ctx, task.ID)
	if got.State != TaskAssigned || got.AssignedTo != agents[winner].ID {
		t.Fatalf("task: %+v", got)
	}
	for i, ag := range agents {
		n, _ := f.store.InboxLen(f.ctx, ag.ID)
		if (i == winner) != (n == 1) || n > 1 {
			t.Fatalf("agent %d inbox %d", i, n)
		}
	}
	if n, _ := f.rdb.LLen(f.ctx, f.store.Keys().Backlog()).Result(); n != 0 {
		t.Fatal("backlog not empty")
	}
}

func TestBacklogClaimFailures(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	if _, _, err := f.store.BacklogClaim(f.ctx, NewID(), a.ID); !errors.Is(err, ErrTaskNotFound) {
		t.Fatalf("missing task: %v", err)
	}
	task, err := f.store.CreateTask(f.ctx, TaskSpec{Description: "not in backlog"})
	f.must(err)
	if _, _, err := f.store.BacklogClaim(f.ctx, task.ID, a.ID); !errors.Is(err, ErrNotInBacklog) {
		t.Fatalf("not in backlog: %v", err)
	}
	if _, _, err := f.store.BacklogClaim(f.ctx, task.ID, "alpha"); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("agent name instead of id: %v", err)
	}
}

func TestBacklogAssignAll(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	for i := 0; i < 3; i++ {
		_, err := f.store.BacklogAdd(f.ctx, fmt.Sprint("task ", i), nil)
		f.must(err)
	}
	got, err := f.store.BacklogAssignAll(f.ctx, a.ID)
	f.must(err)
	if len(got) != 3 || got[0].Description != "task 0" {
		t.Fatalf("assigned %d", len(got))
	}
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 3 || res.Moved[0].Msg.TaskID != got[0].ID {
		t.Fatalf("messages: %d", len(res.Moved))
	}
}

func TestBacklogSnapshotForAnAgentName(t *testing.T) {
	f := newFixture(t)
	var matching []*Task
	for i := 0; i < 10; i++ {
		tk, err := f.store.BacklogAdd(f.ctx, fmt.Sprint("endpoint ", i), []string{"backend"})
		f.must(err)
		matching = append(matching, tk)
		_, err = f.store.BacklogAdd(f.ctx, "polish the page", []string{"frontend"})
		f.must(err)
	}
	f.must(f.rdb.RPush(f.ctx, f.store.Keys().Backlog(), NewID()).Err())

	snap, err := f.store.BacklogSnapshot(f.ctx, "backend-1", 0)
	f.must(err)
	if snap.Total != 21 || snap.Matching != 10 || len(snap.Shown) != DefaultSnapshotLimit || snap.Role != RoleBackend ||
		snap.Hint != RoleBackend.Hint() || snap.Shown[0].ID != matching[0].ID || snap.Shown[7].ID != matching[7].ID {
		t.Fatalf("snapshot: total %d matching %d shown %d", snap.Total, snap.Matching, len(snap.Shown))
	}
	snap, err = f.store.BacklogSnapshot(f.ctx, "reviewer", 3)
	f.must(err)
	if snap.Matching != 0 || len(snap.Shown) != 0 || snap.Total != 21 {
		t.Fatalf("reviewer: %+v", snap)
	}
	snap, err = f.store.BacklogSnapshot(f.ctx, "worker", 3)
	f.must(err)
	if snap.Matching != 20 || len(snap.Shown) != 3 {
		t.Fatalf("general: %+v", snap)
	}
}
