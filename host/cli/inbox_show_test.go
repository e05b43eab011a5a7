package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

// What a prompt cuts to 120 characters, `inbox show` prints whole, wherever
// the message is: waiting, urgent, or in flight while its turn runs.
func TestInboxShowPrintsAMessageWholeWhereverItWaits(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	tt.agent("other")
	ctx := tt.ctx()

	huge := strings.Repeat("0123456789", 1<<17) // a 1.25 MiB brief
	taken := town.NewTask(town.SupervisorID, w.ID, "first line\n"+huge)
	if err := tt.store.Send(ctx, taken); err != nil {
		t.Fatal(err)
	}
	if res, err := tt.store.Intake(ctx, w.ID, town.IntakeOptions{}); err != nil || len(res.Moved) != 1 {
		t.Fatalf("intake: %+v, %v", res, err)
	}
	waiting := town.NewQuery(town.SupervisorID, w.ID, "is the API up?")
	urgent := town.NewInfo(town.SupervisorID, w.ID, "deploy frozen")
	if err := tt.store.Send(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	if err := tt.store.SendUrgent(ctx, urgent); err != nil {
		t.Fatal(err)
	}
	before := [3]int{len(tt.list(tt.store.Keys().Inbox(w.ID))), len(tt.list(tt.store.Keys().Urgent(w.ID))), len(tt.list(tt.store.Keys().InFlight(w.ID)))}

	// Inside a turn the agent's own lists are searched (TINYTOWN_AGENT_ID).
	out := tt.runAs(w.ID, "inbox", "show", taken.ID).ok(t)
	if !strings.Contains(out, "     first line\n     "+huge+"\n") {
		t.Errorf("the output (%d bytes) lacks the whole text", len(out))
	}
	head, _, _ := strings.Cut(out, "     first line")
	mustContain(t, head, "Message "+taken.ID, "Type:         task", "From:         supervisor", "[worker] (",
		"in flight (taken by the worker from its inbox, not finished)", "Text (1310731 characters):")

	var v InboxShowView
	if err := json.Unmarshal([]byte(tt.runAs(w.ID, "inbox", "show", taken.ID, "--json").ok(t)), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != taken.ID || v.Agent != w.ID || v.Place != "in_flight" || v.Text != "first line\n"+huge || v.Task != nil {
		t.Errorf("--json: id %s agent %s place %s text %d chars task %v", v.ID, v.Agent, v.Place, len(v.Text), v.Task)
	}
	var raw struct{ ID string }
	if err := json.Unmarshal(v.Message, &raw); err != nil || raw.ID != taken.ID {
		t.Errorf("--json message is not the stored JSON: %v", err)
	}

	// By a person: every agent is searched, a prefix of 8 is enough.
	mustContain(t, tt.run("inbox", "show", waiting.ID[:8]).ok(t), "Message "+waiting.ID, "inbox (waiting)", "question: is the API up?")
	mustContain(t, tt.run("inbox", "show", strings.ToUpper(urgent.ID), "--agent", "worker").ok(t), "urgent list (waiting)", "deploy frozen")

	after := [3]int{len(tt.list(tt.store.Keys().Inbox(w.ID))), len(tt.list(tt.store.Keys().Urgent(w.ID))), len(tt.list(tt.store.Keys().InFlight(w.ID)))}
	if after != before {
		t.Errorf("list lengths %v after inbox show, %v before: it took messages", after, before)
	}
}

func TestInboxShowPrintsATaskAssignmentWithItsWholeDescription(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	desc := "Build the service.\n" + strings.Repeat("Requirement. ", 5000)
	taskID := firstID(t, tt.run("assign", "worker", desc).ok(t))
	msgs, _, err := tt.store.PeekInbox(tt.ctx(), w.ID, 1)
	if err != nil || len(msgs) != 1 || msgs[0].TaskID != taskID {
		t.Fatalf("inbox %v, %v; want the task assignment", msgs, err)
	}

	out := tt.run("inbox", "show", msgs[0].ID, "--agent", "worker").ok(t)
	mustContain(t, out, "Type:         task_assign", "task assignment "+taskID, "📋 Task "+taskID,
		"     Build the service.\n     "+strings.Repeat("Requirement. ", 5000))
	var v InboxShowView
	if err := json.Unmarshal([]byte(tt.run("inbox", "show", msgs[0].ID, "--json").ok(t)), &v); err != nil {
		t.Fatal(err)
	}
	if v.Task == nil || v.Task.ID != taskID || v.Task.Description != desc {
		t.Errorf("--json task %+v; want the task with its whole description", v.Task)
	}

	// task show, which the prompt names for a cut description, is whole too.
	mustContain(t, tt.run("task", "show", taskID).ok(t), "     Build the service.\n     "+strings.Repeat("Requirement. ", 5000))
}

func TestInboxShowSaysWhereItLookedWhenTheMessageIsGone(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	tt.agent("other")
	gone := "7f3e2d1c-0b9a-4877-8655-443322110099"
	k := tt.store.Keys()

	r := tt.run("inbox", "show", gone, "--agent", "worker")
	r.fails(t, "no message "+gone+" is waiting or in flight", "[worker]", k.Urgent(w.ID), k.Inbox(w.ID), k.InFlight(w.ID), "handled already")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	r = tt.run("inbox", "show", gone)
	r.fails(t, "lists of 2 agents and the supervisor's mailbox", "--agent")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	if r := tt.run("inbox", "show", "7f3"); r.code != 2 {
		t.Errorf("a 3-character id: exit %d (%v), want a usage error", r.code, r.err)
	}

	// Two messages that share a prefix are not guessed between.
	a, b := town.NewInfo(town.SupervisorID, w.ID, "a"), town.NewInfo(town.SupervisorID, w.ID, "b")
	a.ID, b.ID = "abcd0000-0000-4000-8000-000000000001", "abcd0000-0000-4000-8000-000000000002"
	for _, m := range []*town.Message{a, b} {
		if err := tt.store.Send(tt.ctx(), m); err != nil {
			t.Fatal(err)
		}
	}
	tt.run("inbox", "show", "abcd").fails(t, `prefix "abcd" matches 2 messages`)
	mustContain(t, tt.run("inbox", "show", "abcd0000-0000-4000-8000-000000000002").ok(t), "Text (1 characters):\n     b\n")

	// The inbox listing itself still works beside its new subcommand.
	mustContain(t, tt.run("inbox", "worker").ok(t), "2 waiting")
}
