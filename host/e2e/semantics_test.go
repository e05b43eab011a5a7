package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

func TestUrgentMessagesComeFirstInTheOrderTheyWereSent(t *testing.T) {
	e := newEnv(t)
	a := e.agent("orderly")
	e.send(a.ID, "REGULAR_A")
	for _, text := range []string{"URGENT_1", "URGENT_2"} {
		if err := e.store.SendUrgent(e.ctx(), town.NewQuery(town.SupervisorID, a.ID, text)); err != nil {
			t.Fatal(err)
		}
	}
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	prompts := e.prompts()
	if len(prompts) != 1 {
		t.Fatalf("want one turn for the three messages, got %d", len(prompts))
	}
	u1, u2, r := strings.Index(prompts[0], "URGENT_1"), strings.Index(prompts[0], "URGENT_2"), strings.Index(prompts[0], "REGULAR_A")
	if u1 < 0 || u2 < u1 || r < u2 {
		t.Errorf("order in the prompt: URGENT_1@%d URGENT_2@%d REGULAR_A@%d; want urgent first, oldest first", u1, u2, r)
	}
	if !strings.Contains(prompts[0], "[URGENT] from supervisor: question: URGENT_1") {
		t.Errorf("urgent messages are not marked:\n%s", prompts[0])
	}
}

func TestInformationalMessagesAreAutoHandledWithoutATurn(t *testing.T) {
	e := newEnv(t)
	a := e.agent("listener")
	if err := e.store.Send(e.ctx(), town.NewInfo(town.SupervisorID, a.ID, "deploy finished")); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Send(e.ctx(), town.NewAck(town.SupervisorID, a.ID, "thanks")); err != nil {
		t.Fatal(err)
	}
	p := e.agentLoop(a, 1)
	// The loop handles them without running the CLI; then a real task gets
	// the one round.
	e.waitEvent(a.ID, long, "auto-handled", func(ev *town.TownEvent) bool {
		return ev.Scope == "tthost.auto_handled" && strings.Contains(ev.Message, "1 informational message(s) and 1 confirmation(s)")
	})
	if act := e.activity(a.ID); !strings.Contains(act, "auto-handled 1 informational, 1 confirmations") {
		t.Errorf("activity lacks the auto-handled line:\n%s", act)
	}
	e.send(a.ID, "real work")
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if prompts := e.prompts(); len(prompts) != 1 || !strings.Contains(prompts[0], "real work") {
		t.Fatalf("prompts %q; want only the task's turn", prompts)
	}
	if n := e.inFlightLen(a.ID) + e.inboxLen(a.ID); n != 0 {
		t.Errorf("%d message(s) left over", n)
	}
}

func TestAnIdleAgentIsOfferedRoleMatchingBacklog(t *testing.T) {
	e := newEnv(t)
	a := e.agent("backend")
	task, err := e.store.BacklogAdd(e.ctx(), "Add an index to the users table", []string{"database"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.BacklogAdd(e.ctx(), "Polish the landing page", []string{"frontend"}); err != nil {
		t.Fatal(err)
	}
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	prompts := e.prompts()
	if len(prompts) != 1 {
		t.Fatalf("want one backlog-review turn, got %d prompts", len(prompts))
	}
	for _, want := range []string{"No direct assignments right now. Backlog has 1 role-matching task(s)", task.ID, "tthost backlog claim"} {
		if !strings.Contains(prompts[0], want) {
			t.Errorf("the backlog offer lacks %q:\n%s", want, prompts[0])
		}
	}
	if strings.Contains(prompts[0], "Polish the landing page") {
		t.Errorf("a task of another role was offered:\n%s", prompts[0])
	}
	// The synthetic query was never in Redis and is not re-queued.
	if n := e.inboxLen(a.ID); n != 0 {
		t.Errorf("inbox has %d message(s) after the offer", n)
	}
}

func TestASecondWorkerForTheSameAgentIsRefused(t *testing.T) {
	e := newEnv(t)
	a := e.agent("solo")
	e.send(a.ID, "keep the first worker busy once")
	first := e.agentLoop(a, 100)
	e.waitEventType(a.ID, town.EventAgentTurnCompleted, long)

	second := e.agentLoop(a, 100)
	code := second.wait(t, long)
	if code == 0 || !strings.Contains(second.out.String(), "already served by another worker") {
		t.Fatalf("second worker exit %d; want a refusal naming the holder:\n%s", code, second.out.String())
	}
	if got := e.getAgent(a.ID); got.State == town.StateStopped {
		t.Errorf("the refused worker changed the agent's state to %s", got.State)
	}
	if err := e.store.RequestStop(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t, long); code != 0 {
		t.Fatalf("first worker exit %d:\n%s", code, first.out.String())
	}
}
