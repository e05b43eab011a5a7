package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

func TestInboxShowsPrefixesWithoutConsuming(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	peer := tt.agent("peer")
	k := tt.store.Keys()
	ctx := tt.ctx()

	// One message is already taken by the worker (in flight).
	if err := tt.store.Send(ctx, town.NewTask(town.SupervisorID, w.ID, "taken task")); err != nil {
		t.Fatal(err)
	}
	if res, err := tt.store.Intake(ctx, w.ID, town.IntakeOptions{}); err != nil || len(res.Moved) != 1 {
		t.Fatalf("intake: %+v, %v", res, err)
	}
	tt.run("send", "worker", "waiting task").ok(t)
	tt.runAs(peer.ID, "send", "worker", "--query", "a question").ok(t)
	tt.run("send", "worker", "--info", "an fyi").ok(t)
	tt.run("send", "worker", "--ack", "thanks!").ok(t)
	tt.run("send", "worker", "--urgent", "urgent task").ok(t)
	if err := tt.store.Send(ctx, town.NewShutdown(town.SupervisorID, w.ID)); err != nil {
		t.Fatal(err)
	}
	if err := tt.redis.Client.RPush(ctx, k.Inbox(w.ID), "not json").Err(); err != nil {
		t.Fatal(err)
	}
	lens := func() [3]int {
		return [3]int{len(tt.list(k.Inbox(w.ID))), len(tt.list(k.Urgent(w.ID))), len(tt.list(k.InFlight(w.ID)))}
	}
	before := lens()

	out := tt.run("inbox", "worker").ok(t)
	mustContain(t, out,
		"1 urgent, 6 waiting, 1 in flight",
		"[T] urgent task", "[T] waiting task", "[Q] question: a question  (from peer",
		"[I] an fyi", "[C] thanks", "[!] shutdown", "[T] taken task",
		"1 unparseable entry")
	if strings.Index(out, "urgent task") > strings.Index(out, "waiting task") ||
		strings.Index(out, "waiting task") > strings.Index(out, "taken task") {
		t.Errorf("sections out of order (urgent, inbox, in flight):\n%s", out)
	}
	if after := lens(); after != before {
		t.Errorf("inbox/urgent/in-flight lengths %v after inbox, %v before: inbox consumed messages", after, before)
	}

	var v InboxView
	if err := json.Unmarshal([]byte(tt.run("inbox", "worker", "--json", "-n", "2").ok(t)), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Urgent) != 1 || len(v.Inbox) != 2 || len(v.InFlight) != 1 || v.InboxLen != 6 || v.Unparseable != 0 {
		t.Errorf("inbox --json -n 2: %d urgent, %d inbox (len %d), %d in flight, %d unparseable",
			len(v.Urgent), len(v.Inbox), v.InboxLen, len(v.InFlight), v.Unparseable)
	}
	if len(v.Inbox) > 0 {
		var m map[string]any
		if err := json.Unmarshal(v.Inbox[0].Message, &m); err != nil || m["description"] != "waiting task" || v.Inbox[0].Prefix != "[T]" {
			t.Errorf("first inbox message %s (%v), prefix %s", v.Inbox[0].Message, err, v.Inbox[0].Prefix)
		}
	}
}
