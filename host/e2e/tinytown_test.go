package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

// TestServesATownWrittenByTinytown writes a town exactly as `tt` leaves it
// (a tt-written tinytown.toml, an agent hash from `tt spawn`, a task hash
// and a task_assign message from `tt assign`), byte for byte from the
// reference, and runs tthost's agent-loop on it unchanged.
func TestServesATownWrittenByTinytown(t *testing.T) {
	e := newEnv(t)
	// tinytown.toml as tt init writes it (no [tthost] section), with a
	// custom CLI pointing at the test CLI.
	toml := `name = "e2e"
default_cli = "claude"
max_agents = 10
use_central_redis = false
use_streams = false

[redis]
use_socket = true
socket_path = ".tt/redis.sock"
host = "127.0.0.1"
port = 6379
persist = false
aof_path = ".tt/redis.aof"
tls_enabled = false
bind = "127.0.0.1"

[agent]
idle_timeout_secs = 300
persistent = false

[agent_clis.test]
name = "test"
command = "sh ` + testdataPath(t, "cli.sh") + `"
[agent_clis.test.env]
`
	if err := os.WriteFile(filepath.Join(e.dir, "tinytown.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		agentID = "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
		taskID  = "0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21"
	)
	ctx := context.Background()
	rdb := e.redis.Client
	k := e.store.Keys()
	// The agent hash `tt spawn backend --role backend` leaves.
	if err := rdb.HSet(ctx, k.Agent(agentID),
		"id", agentID, "name", "backend", "agent_type", "worker", "state", "starting", "cli", "test",
		"created_at", "2026-04-23T22:32:34.123456789+00:00",
		"last_heartbeat", "2026-04-23T22:32:34.123456789+00:00",
		"tasks_completed", "0", "rounds_completed", "0",
		"last_active_at", "2026-04-23T22:32:34.123456789+00:00",
		"spawn_mode", "fresh", "nickname", "Daniel", "role_id", "backend",
	).Err(); err != nil {
		t.Fatal(err)
	}
	// `tt assign`: the task hash, then the task_assign message.
	if err := rdb.HSet(ctx, k.Task(taskID),
		"id", taskID, "description", "Build the /health endpoint", "state", "assigned",
		"created_at", "2026-04-23T22:40:01.112233445+00:00", "updated_at", "2026-04-23T22:40:01.112233445+00:00",
		"tags", "[]", "assigned_to", agentID,
	).Err(); err != nil {
		t.Fatal(err)
	}
	msg := `{"id":"135c34b4-9ce0-4eb4-8343-06a1fa5deaf9","from":"00000000-0000-0000-0000-000000000001","to":"` + agentID +
		`","type":"task_assign","task_id":"` + taskID + `","priority":"normal","created_at":"2026-04-23T22:40:01.112233445Z","correlation_id":null}`
	if err := rdb.RPush(ctx, k.Inbox(agentID), msg).Err(); err != nil {
		t.Fatal(err)
	}

	p := e.tthost("", "agent-loop", "backend", agentID, "1")
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}

	prompts := e.prompts()
	if len(prompts) != 1 || !strings.Contains(prompts[0], "Task ID: "+taskID) || !strings.Contains(prompts[0], "Build the /health endpoint") {
		t.Fatalf("the CLI did not get the hand-written task: %q", prompts)
	}
	got := e.getAgent(agentID)
	if got.State != town.StateStopped || got.RoundsCompleted != 1 || got.CurrentTask != taskID ||
		got.Nickname != "Daniel" || got.RoleID != "backend" || got.SpawnMode != "fresh" || len(got.Problems) != 0 {
		t.Errorf("agent after the run: %+v", got)
	}
	task, err := e.store.GetTask(ctx, taskID)
	if err != nil || task.State != town.TaskRunning {
		t.Errorf("task %+v (%v); want running: the turn started it and the CLI did not complete it", task, err)
	}
	// Every hash field tthost wrote is in tt's encoding.
	fields, err := rdb.HGetAll(ctx, k.Agent(agentID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"created_at", "last_heartbeat", "last_active_at"} {
		if !strings.HasSuffix(fields[f], "+00:00") {
			t.Errorf("%s = %q: hash timestamps end in +00:00", f, fields[f])
		}
	}
	if fields["state"] != "stopped" {
		t.Errorf("state field %q, want lowercase stopped", fields["state"])
	}
	// tt reads the events tthost wrote: known types, data JSON with Z times.
	entries, err := e.store.ReadEvents(ctx, k.EventsAgent(agentID), "", 0)
	if err != nil || len(entries) == 0 {
		t.Fatalf("events: %v %v", entries, err)
	}
	for _, en := range entries {
		if en.Event == nil || !en.Event.Type.Known() || !strings.HasSuffix(en.Event.Timestamp.Format("2006-01-02T15:04:05Z07:00"), "Z") {
			t.Errorf("event %s is not one tt reads: %+v (%v)", en.ID, en.Event, en.Err)
		}
	}
}
