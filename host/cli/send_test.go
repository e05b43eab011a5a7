package cli

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tthost/tthost/host/town"
)

func TestSendWritesTheMessageTypeOfEachFlag(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	sender := tt.agent("sender")
	k := tt.store.Keys()

	cases := []struct {
		name   string
		as     string // TINYTOWN_AGENT_ID; "" sends as the supervisor
		args   []string
		list   string // the key the message must land in
		fields map[string]any
	}{
		{"no flag sends a task", "", []string{"send", "worker", "build", "the", "thing"}, k.Inbox(w.ID),
			map[string]any{"type": "task", "description": "build the thing"}},
		{"query sends a question", "", []string{"send", "worker", "--query", "done yet?"}, k.Inbox(w.ID),
			map[string]any{"type": "query", "question": "done yet?"}},
		{"info sends an informational summary", "", []string{"send", "worker", "--info", "fyi: merged"}, k.Inbox(w.ID),
			map[string]any{"type": "informational", "summary": "fyi: merged"}},
		{"ack received is a received confirmation", "", []string{"send", "worker", "--ack", "received"}, k.Inbox(w.ID),
			map[string]any{"type": "confirmation", "ack_type": map[string]any{"type": "received"}}},
		{"ack rejected carries the reason", "", []string{"send", "worker", "--ack", "rejected: too big"}, k.Inbox(w.ID),
			map[string]any{"type": "confirmation", "ack_type": map[string]any{"type": "rejected", "reason": "too big"}}},
		{"ack with other text is acknowledged", "", []string{"send", "worker", "--ack", "ok"}, k.Inbox(w.ID),
			map[string]any{"type": "confirmation", "ack_type": map[string]any{"type": "acknowledged"}}},
		{"urgent goes to the urgent list with normal priority", "", []string{"send", "worker", "--urgent", "--query", "now?"}, k.Urgent(w.ID),
			map[string]any{"type": "query", "question": "now?"}},
		{"the supervisor has a mailbox", "", []string{"send", "conductor", "--info", "all done"}, k.Inbox(town.SupervisorID),
			map[string]any{"type": "informational", "summary": "all done"}},
		{"an agent sends as itself", sender.ID, []string{"send", "worker", "hi from an agent"}, k.Inbox(w.ID),
			map[string]any{"type": "task", "description": "hi from an agent"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(tt.list(c.list))
			var r result
			if c.as != "" {
				r = tt.runAs(c.as, c.args...)
			} else {
				r = tt.run(c.args...)
			}
			out := r.ok(t)
			l := tt.list(c.list)
			if len(l) != before+1 {
				t.Fatalf("%s has %d messages, want %d", c.list, len(l), before+1)
			}
			raw := l[len(l)-1]
			if c.list == k.Urgent(w.ID) {
				raw = l[0] // LPUSH, as tt
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatal(err)
			}
			for key, want := range c.fields {
				if !reflect.DeepEqual(got[key], want) {
					t.Errorf("%s = %#v, want %#v (message %s)", key, got[key], want, raw)
				}
			}
			from := town.SupervisorID
			if c.as != "" {
				from = c.as
			}
			if got["from"] != from || got["priority"] != "normal" {
				t.Errorf("from %v priority %v, want %s normal", got["from"], got["priority"], from)
			}
			if _, err := town.ParseMessage(raw); err != nil {
				t.Errorf("tt could not parse the message: %v", err)
			}
			mustContain(t, out, got["id"].(string))
		})
	}
}

func TestSendRefusesABadSenderAndEmptyText(t *testing.T) {
	tt := newTestTown(t)
	tt.agent("worker")
	tt.runAs("not-a-uuid", "send", "worker", "x").fails(t, "TINYTOWN_AGENT_ID", "not an agent id")
	r := tt.run("send", "worker", "  ")
	r.fails(t, "must not be empty")
	if r.code != 2 {
		t.Errorf("exit code %d, want 2 (usage)", r.code)
	}
	r = tt.run("send", "worker", "--query", "--info", "x")
	r.fails(t, "only one of --query, --info and --ack")
	if r.code != 2 {
		t.Errorf("exit code %d, want 2 (usage)", r.code)
	}
}
