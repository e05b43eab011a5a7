package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// firstID is the first UUID in a command's output.
func firstID(t *testing.T, out string) string {
	t.Helper()
	id := uuidRE.FindString(out)
	if id == "" {
		t.Fatalf("no id in output:\n%s", out)
	}
	return id
}

func TestAssignThenCompleteCountsTheTaskOnce(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")

	taskID := firstID(t, tt.run("assign", "worker", "build the parser").ok(t))
	task, err := tt.store.GetTask(tt.ctx(), taskID)
	if err != nil || task.State != town.TaskAssigned || task.AssignedTo != w.ID || task.Description != "build the parser" {
		t.Fatalf("task %+v, %v", task, err)
	}
	inbox := tt.list(tt.store.Keys().Inbox(w.ID))
	if len(inbox) != 1 {
		t.Fatalf("inbox %q, want one task_assign", inbox)
	}
	m, err := town.ParseMessage(inbox[0])
	if err != nil || m.Type != town.TypeTaskAssign || m.TaskID != taskID || m.From != town.SupervisorID {
		t.Fatalf("message %+v, %v", m, err)
	}

	// The agent finds its task the way the prompt tells it to.
	out := tt.runAs(w.ID, "task", "current").ok(t)
	mustContain(t, out, taskID, "build the parser", "tthost task complete "+taskID)
	mustContain(t, tt.run("task", "current", "worker").ok(t), taskID)
	r := tt.run("task", "current")
	r.fails(t, "TINYTOWN_AGENT_ID", "tthost task current AGENT")
	if r.code != 2 {
		t.Errorf("exit code %d, want 2", r.code)
	}

	out = tt.runAs(w.ID, "task", "complete", taskID, "--result", "parser done").ok(t)
	mustContain(t, out, "completed", "parser done", "tasks_completed +1", "now 1")
	if a := tt.getAgent(w.ID); a.TasksCompleted != 1 {
		t.Errorf("tasks_completed = %d, want 1", a.TasksCompleted)
	}
	out = tt.run("task", "complete", taskID, "--json").ok(t)
	var c TaskCompletion
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if !c.WasFinished || c.Counted || c.Task.State != "completed" || c.Task.Result != "Completed" {
		t.Errorf("second completion %+v: want it finished before and not counted", c)
	}
	if a := tt.getAgent(w.ID); a.TasksCompleted != 1 {
		t.Errorf("tasks_completed = %d after completing twice, want 1", a.TasksCompleted)
	}
	mustContain(t, tt.run("task", "current", "worker").ok(t), "No current task")

	evs := tt.events(tt.store.Keys().EventsAgent(w.ID))
	var types []string
	for _, e := range evs {
		types = append(types, string(e.Type))
	}
	if strings.Join(types, ",") != "task_assigned,task_completed" {
		t.Errorf("agent events %v, want task_assigned then task_completed (once)", types)
	}
}

func TestTaskShowAndListFindTasksByIDOrPrefix(t *testing.T) {
	tt := newTestTown(t)
	tt.agent("worker")
	id := firstID(t, tt.run("assign", "worker", "line one\nline two").ok(t))

	out := tt.run("task", "show", id[:8]).ok(t)
	mustContain(t, out, id, "assigned", "worker", "line one", "line two")
	out = tt.run("task", "show", strings.ToUpper(id), "--json").ok(t)
	var j TaskJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.ID != id || j.AssignedToName != "worker" {
		t.Errorf("task show --json = %+v, %v", j, err)
	}
	out = tt.run("task", "list").ok(t)
	mustContain(t, out, id[:8], "assigned", "worker", "line one")
	out = tt.run("task", "list", "--json").ok(t)
	var l []TaskJSON
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l) != 1 {
		t.Errorf("task list --json = %s, %v", out, err)
	}

	missing := "00000000-0000-4000-8000-000000000000"
	tt.run("task", "show", missing).fails(t, "task not found", missing)
	tt.run("task", "complete", missing).fails(t, "task not found")
	tt.run("task", "show", "zz").fails(t, "not a task id")
}

func TestBacklogAddListClaimRemove(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")

	first := firstID(t, tt.run("backlog", "add", "write docs", "--tags", "docs, api").ok(t))
	second := firstID(t, tt.run("backlog", "add", "fix the build").ok(t))
	out := tt.run("backlog", "list").ok(t)
	mustContain(t, out, "2 tasks", first, "docs,api", "write docs", second, "fix the build")
	if strings.Index(out, first) > strings.Index(out, second) {
		t.Error("backlog list is not in backlog order")
	}
	var items []BacklogItem
	if err := json.Unmarshal([]byte(tt.run("backlog", "list", "--json").ok(t)), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].TaskID != first || items[0].Task == nil ||
		strings.Join(items[0].Task.Tags, ",") != "docs,api" || items[0].Task.State != "pending" {
		t.Fatalf("backlog list --json = %+v", items)
	}

	// A typo in the agent leaves the task in the backlog.
	tt.run("backlog", "claim", first, "nobody").fails(t, "agent not found")
	out = tt.runAs(w.ID, "backlog", "claim", first, "worker").ok(t)
	mustContain(t, out, "claimed task "+first)
	task, _ := tt.store.GetTask(tt.ctx(), first)
	if task.State != town.TaskAssigned || task.AssignedTo != w.ID {
		t.Errorf("claimed task %+v", task)
	}
	inbox := tt.list(tt.store.Keys().Inbox(w.ID))
	if m, err := town.ParseMessage(inbox[0]); err != nil || m.Type != town.TypeTaskAssign || m.TaskID != first {
		t.Errorf("inbox %q", inbox)
	}
	tt.run("backlog", "claim", first, "worker").fails(t, "not in the backlog")

	mustContain(t, tt.run("backlog", "remove", second).ok(t), "Removed task "+second)
	tt.run("backlog", "remove", second).fails(t, "not in the backlog")
	mustContain(t, tt.run("backlog", "list").ok(t), "backlog is empty")
}
