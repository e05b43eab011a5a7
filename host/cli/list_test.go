package cli

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tthost/tthost/host/town"
)

func TestListAndStatusShowAgentsQueuesAndCurrentTask(t *testing.T) {
	tt := newTestTown(t)
	mustContain(t, tt.run("list").ok(t), "No agents")
	w := tt.agent("worker")
	tt.agent("idler")
	taskID := firstID(t, tt.run("assign", "worker", "the current job").ok(t))
	tt.run("send", "worker", "--urgent", "hurry").ok(t)
	tt.run("backlog", "add", "later").ok(t)
	for _, line := range []string{"Round 1: ✅ completed", "Round 2: ✅ completed"} {
		if err := tt.store.LogActivity(tt.ctx(), w.ID, line); err != nil {
			t.Fatal(err)
		}
	}

	out := tt.run("list").ok(t)
	mustContain(t, out, "NAME", "worker", w.ShortID(), "starting", "claude", "1/1/0", taskID[:8]+" the current job", "idler", "0/0/0")

	var rows []AgentRow
	if err := json.Unmarshal([]byte(tt.run("list", "--json").ok(t)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != w.ID || rows[0].Inbox != 1 || rows[0].Urgent != 1 || rows[0].CurrentTask != taskID {
		t.Errorf("list --json = %+v", rows)
	}

	out = tt.run("status").ok(t)
	mustContain(t, out, "Town "+testTownName, tt.redis.URL, "REDIS_URL", "2 (2 active)", "2 open (1 in the backlog), 0 completed", "worker", "idler")
	var st TownStatus
	if err := json.Unmarshal([]byte(tt.run("status", "--json").ok(t)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Town != testTownName || st.Backlog != 1 || len(st.Agents) != 2 || st.Redis.Source != "REDIS_URL" {
		t.Errorf("status --json = %+v", st)
	}

	out = tt.run("status", "worker", "--deep").ok(t)
	mustContain(t, out, w.ID, "starting", "1 in the inbox, 1 urgent", taskID, "Recent activity", "Round 2: ✅ completed", "Round 1")
	var row AgentRow
	if err := json.Unmarshal([]byte(tt.run("status", w.ShortID(), "--deep", "--json").ok(t)), &row); err != nil {
		t.Fatal(err)
	}
	if row.ID != w.ID || len(row.Activity) != 2 || row.Activity[0] != "Round 2: ✅ completed" {
		t.Errorf("status --deep --json = %+v", row)
	}
	tt.run("status", "a", "b").fails(t, "at most one AGENT")
}

// status shows what serves an agent as its worker recorded it: the backend,
// one-shot or persistent, how urgent messages are steered, and (--deep) why.
func TestStatusShowsTheBackendSessionAndSteerMode(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("gem")
	mustNotContain(t, tt.run("status", "gem").ok(t), "Backend:")
	if err := tt.store.SetRuntime(tt.ctx(), w.ID, town.Runtime{Backend: "acp", Persistent: true, Reason: "persistent session through the acp backend", Worker: "h:42"}); err != nil {
		t.Fatal(err)
	}
	if err := tt.store.SetRuntimeSession(tt.ctx(), w.ID, "sess-9", "queue"); err != nil {
		t.Fatal(err)
	}
	out := tt.run("status", "gem").ok(t)
	mustContain(t, out, "acp (persistent session), worker h:42", "queue (a follow-up prompt")
	mustNotContain(t, out, "through the acp backend")
	mustContain(t, tt.run("status", "gem", "--deep").ok(t), "Chosen:", "persistent session through the acp backend")
	var row AgentRow
	if err := json.Unmarshal([]byte(tt.run("status", "gem", "--json").ok(t)), &row); err != nil {
		t.Fatal(err)
	}
	if rt := row.Runtime; rt == nil || rt.Backend != "acp" || rt.SessionID != "sess-9" || rt.SteerMode != "queue" || !rt.Persistent {
		t.Errorf("status --json runtime = %+v", row.Runtime)
	}
}

func TestAgentReferencesResolveLikeTt(t *testing.T) {
	tt := newTestTown(t)
	a, err := tt.store.CreateAgent(tt.ctx(), town.AgentSpec{Name: "builder", CLI: "claude", Nickname: "Ada", RoleID: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"builder", "BUILDER", "ada", "Ada [backend]", a.ShortID(), a.ID, "{" + a.ID + "}"} {
		t.Run(ref, func(t *testing.T) {
			mustContain(t, tt.run("send", ref, "--info", "hi").ok(t), "to Ada [backend] ("+a.ShortID()+")")
		})
	}
}

func TestAmbiguousAndUnknownAgentsAreReportedByEveryCommand(t *testing.T) {
	tt := newTestTown(t)
	d1 := tt.agent("dup")
	d2 := tt.agent("dup")
	taskID := firstID(t, tt.run("backlog", "add", "x").ok(t))

	commands := [][]string{
		{"send", "%s", "hello"},
		{"assign", "%s", "work"},
		{"inbox", "%s"},
		{"status", "%s"},
		{"stop", "%s"},
		{"kill", "%s"},
		{"interrupt", "%s"},
		{"resume", "%s"},
		{"task", "current", "%s"},
		{"events", "--agent", "%s"},
		{"backlog", "claim", taskID, "%s"},
		{"backlog", "assign-all", "%s"},
	}
	with := func(args []string, ref string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			if a == "%s" {
				a = ref
			}
			out[i] = a
		}
		return out
	}
	for _, c := range commands {
		t.Run(c[0]+" ambiguous", func(t *testing.T) {
			r := tt.run(with(c, "dup")...)
			r.fails(t, "ambiguous", d1.ID, d2.ID, "short id")
			if !errors.Is(r.err, town.ErrAmbiguousAgent) {
				t.Errorf("error %v is not ErrAmbiguousAgent", r.err)
			}
		})
		t.Run(c[0]+" unknown", func(t *testing.T) {
			r := tt.run(with(c, "nobody")...)
			r.fails(t, "no agent matches", "tthost list")
			if !errors.Is(r.err, town.ErrAgentNotFound) {
				t.Errorf("error %v is not ErrAgentNotFound", r.err)
			}
		})
	}
	// Nothing was changed by the failed commands.
	for _, d := range []*town.Agent{d1, d2} {
		if s := tt.controlState(d.ID); s.state != town.StateStarting || s.stop || s.event != nil {
			t.Errorf("agent %s changed: %+v", d.ID, s)
		}
	}
	if n := len(tt.list(tt.store.Keys().Backlog())); n != 1 {
		t.Errorf("backlog has %d tasks, want 1", n)
	}
}
