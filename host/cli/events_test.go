package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
)

// emit records an event of typ for agent.
func (tt *testTown) emit(typ town.EventType, agent, msg string) {
	tt.t.Helper()
	ev := town.NewEvent(typ, msg)
	ev.AgentID = agent
	if err := tt.store.Emit(tt.ctx(), ev); err != nil {
		tt.t.Fatal(err)
	}
}

// jsonLines parses `events --json` output.
func jsonLines(t *testing.T, out string) []EventLine {
	t.Helper()
	var lines []EventLine
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e EventLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		lines = append(lines, e)
	}
	return lines
}

func eventTypes(lines []EventLine) string {
	var s []string
	for _, l := range lines {
		s = append(s, l.EventType)
	}
	return strings.Join(s, ",")
}

func TestEventsPrintsHistory(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	other := tt.agent("other")
	tt.emit(town.EventAgentSpawned, w.ID, "worker spawned")
	tt.emit(town.EventAgentTurnStarted, other.ID, "other's turn")
	tt.emit(town.EventAgentInterrupted, w.ID, "worker paused")
	tt.emit(town.EventAgentResumed, w.ID, "worker resumed")

	cases := []struct {
		name string
		args []string
		want string // event types, in order
	}{
		{"the town's stream", []string{"events", "--json"}, "agent_spawned,agent_turn_started,agent_interrupted,agent_resumed"},
		{"the last n", []string{"events", "--json", "-n", "2"}, "agent_interrupted,agent_resumed"},
		{"one agent's stream", []string{"events", "--json", "--agent", "worker"}, "agent_spawned,agent_interrupted,agent_resumed"},
		{"until an event in the history", []string{"events", "--json", "--until", "agent_interrupted"}, "agent_spawned,agent_turn_started,agent_interrupted"},
		{"until within the last n", []string{"events", "--json", "-n", "3", "--until", "agent_turn_started"}, "agent_turn_started"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines := jsonLines(t, tt.run(c.args...).ok(t))
			if got := eventTypes(lines); got != c.want {
				t.Errorf("event types %s, want %s", got, c.want)
			}
			for _, l := range lines {
				var data map[string]any
				if err := json.Unmarshal(l.Data, &data); err != nil || data["event_type"] != l.EventType || l.ID == "" {
					t.Errorf("line %+v: data must be the event (%v)", l, err)
				}
			}
		})
	}

	out := tt.run("events", "-n", "1").ok(t)
	mustContain(t, out, "agent_resumed", "worker", "worker resumed")
}

func TestEventsFollowPrintsALaterEventAndStopsAtUntil(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	tt.emit(town.EventAgentInterrupted, w.ID, "before the follow")

	out := newSyncBuffer()
	done := make(chan result, 1)
	go func() {
		done <- tt.runWith(nil, out, "events", "--agent", "worker", "-n", "1", "--until", "agent_resumed", "--timeout", "60s", "--json")
	}()
	// The history line is printed once the follow's start is fixed: what
	// is emitted now can only reach the command by following.
	waitFor(t, out.written, 30*time.Second, "the history line")
	tt.emit(town.EventAgentStopped, w.ID, "not yet")
	tt.emit(town.EventAgentResumed, w.ID, "now")
	tt.emit(town.EventAgentStopped, w.ID, "after until")
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("events --follow --until did not end after the event")
	}
	lines := jsonLines(t, r.ok(t))
	if got := eventTypes(lines); got != "agent_interrupted,agent_stopped,agent_resumed" {
		t.Errorf("followed %s, want the history, then agent_stopped and agent_resumed (no duplicates, nothing after --until)", got)
	}
}

func TestEventsUntilTimesOutWithExitCode1(t *testing.T) {
	tt := newTestTown(t)
	tt.agent("worker")
	r := tt.run("events", "--agent", "worker", "-n", "0", "--until", "agent_turn_completed", "--timeout", "300ms")
	r.fails(t, "no agent_turn_completed event", "within 300ms")
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
}

func TestEventsRejectsBadFlags(t *testing.T) {
	tt := newTestTown(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"events", "--until", "agent_exploded"}, "not an event type"},
		{[]string{"events", "-n", "-1"}, "-n must be 0 or more"},
		{[]string{"events", "--timeout", "1s"}, "only applies with --follow or --until"},
	}
	for _, c := range cases {
		r := tt.run(c.args...)
		r.fails(t, c.want)
		if r.code != 2 {
			t.Errorf("%v: exit code %d, want 2", c.args, r.code)
		}
	}
}
