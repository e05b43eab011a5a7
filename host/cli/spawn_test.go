package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

// fakeRecord is what host/cli/internal/fakeloop records.
type fakeRecord struct {
	Args  []string `json:"args"`
	Pid   int      `json:"pid"`
	Sid   int      `json:"sid"`
	Pgid  int      `json:"pgid"`
	Stdin string   `json:"stdin"`
	Dir   string   `json:"dir"`
}

// spawnTown is a town whose tthost executable is the fake worker.
func spawnTown(t *testing.T) (tt *testTown, record string) {
	tt = newTestTown(t)
	tt.exe = sdktest.Build(t, "github.com/tthost/tthost/host/cli/internal/fakeloop", "fakeloop")
	record = filepath.Join(tt.dir, "record.json")
	tt.procEnv = append(tt.procEnv, "FAKELOOP_RECORD="+record)
	return tt, record
}

// reap waits for a detached worker spawn started (spawn never waits: the
// worker outlives it) and fails unless it exited 0. If the test ends
// first, the worker's process group (its own session) is killed.
func reap(t *testing.T, pid int) {
	t.Helper()
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_, _ = syscall.Wait4(pid, nil, 0, nil)
		}
	})
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait for worker %d: %v", pid, err)
	}
	reaped = true
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("worker %d ended with %v", pid, ws)
	}
}

func TestSpawnStartsADetachedWorkerWithTinytownsArguments(t *testing.T) {
	tt, record := spawnTown(t)
	logs := filepath.Join(tt.dir, ".tt", "logs")
	writeFile(t, filepath.Join(logs, "worker_round_1.log"), "old")
	writeFile(t, filepath.Join(logs, "worker_round_12.log"), "old")
	writeFile(t, filepath.Join(logs, "workers_round_1.log"), "another agent's")
	writeFile(t, filepath.Join(logs, "worker.log"), "the previous worker's output")

	out := tt.run("spawn", "worker", "--cli", "codex", "--max-rounds", "3", "--role", "builder", "--nickname", "Nick", "--json").ok(t)
	var res SpawnResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("spawn --json printed %q: %v", out, err)
	}
	if res.Pid <= 0 {
		t.Fatalf("spawn reported pid %d", res.Pid)
	}
	reap(t, res.Pid)

	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("the worker recorded nothing: %v", err)
	}
	var rec fakeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	wantArgs := []string{"--town", tt.dir, "agent-loop", "worker", res.ID, "3"}
	if !reflect.DeepEqual(rec.Args, wantArgs) {
		t.Errorf("worker argv %q, want %q", rec.Args, wantArgs)
	}
	if rec.Pid != res.Pid || rec.Sid != rec.Pid || rec.Pgid != rec.Pid {
		t.Errorf("worker pid %d sid %d pgid %d: want its own session and group (spawn said pid %d)", rec.Pid, rec.Sid, rec.Pgid, res.Pid)
	}
	if rec.Stdin != "/dev/null" || rec.Dir != tt.dir {
		t.Errorf("worker stdin %q dir %q, want /dev/null and %s", rec.Stdin, rec.Dir, tt.dir)
	}

	logPath := filepath.Join(logs, "worker.log")
	if res.Log != logPath {
		t.Errorf("log %q, want %q", res.Log, logPath)
	}
	lb, _ := os.ReadFile(logPath)
	if got := string(lb); got != "fakeloop: stdout line\nfakeloop: stderr line\n" {
		t.Errorf("worker.log = %q: want the worker's stdout and stderr, truncated first", got)
	}
	for _, n := range []string{"worker_round_1.log", "worker_round_12.log"} {
		if fileExists(filepath.Join(logs, n)) {
			t.Errorf("%s was not deleted", n)
		}
	}
	if !fileExists(filepath.Join(logs, "workers_round_1.log")) {
		t.Error("another agent's round log was deleted")
	}

	a := tt.getAgent(res.ID)
	if a.Name != "worker" || a.CLI != "codex" || a.State != town.StateStarting || a.Nickname != "Nick" ||
		a.RoleID != "builder" || a.Type != town.AgentWorker || len(a.Problems) > 0 {
		t.Errorf("agent record %+v", a)
	}
	evs := tt.events(tt.store.Keys().EventsAgent(res.ID))
	if len(evs) != 1 || evs[0].Type != town.EventAgentSpawned || evs[0].NewState != "Starting" {
		t.Errorf("agent events %+v, want one agent_spawned", evs)
	}
}

func TestSpawnRefusesASecondLiveAgentWithTheSameName(t *testing.T) {
	tt, _ := spawnTown(t)
	out := tt.run("spawn", "worker").ok(t)
	mustContain(t, out, "Spawned agent", "pid", filepath.Join(tt.dir, ".tt", "logs", "worker.log"), "claude")
	agents, _ := tt.store.ListAgents(tt.ctx())
	if len(agents) != 1 {
		t.Fatalf("%d agents, want 1", len(agents))
	}
	first := agents[0]
	reap(t, pidIn(t, out))

	tt.run("spawn", "Worker").fails(t, `agent "worker" already exists`, "starting", first.ID, "tthost stop")

	tt.run("stop", "worker").ok(t)
	reap(t, pidIn(t, tt.run("spawn", "worker", "--json").ok(t)))
	agents, _ = tt.store.ListAgents(tt.ctx())
	if len(agents) != 2 {
		t.Errorf("%d agents after a respawn, want 2 (tt keeps stopped agents)", len(agents))
	}
}

// pidIn finds the worker pid spawn printed, in its human or JSON output.
func pidIn(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`(?:pid |"pid": )(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("spawn printed no pid:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func TestSpawnRefusesNamesThatCannotBeAgents(t *testing.T) {
	tt, _ := spawnTown(t)
	cases := []struct{ name, want string }{
		{"supervisor", "reserved"},
		{" Conductor ", "reserved"},
		{"a/b", "cannot be a file name"},
		{"..", "cannot be a file name"},
		{"", "must not be blank"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tt.run("spawn", c.name).fails(t, c.want)
		})
	}
	if agents, _ := tt.store.ListAgents(tt.ctx()); len(agents) != 0 {
		t.Errorf("%d agents were created", len(agents))
	}
}

func TestSpawnTakesTheAgentBackWhenTheWorkerCannotStart(t *testing.T) {
	tt := newTestTown(t)
	tt.exe = filepath.Join(tt.dir, "no-such-tthost")
	tt.run("spawn", "worker").fails(t, "start the worker", "no-such-tthost")
	if agents, _ := tt.store.ListAgents(tt.ctx()); len(agents) != 0 {
		t.Errorf("%d agents left after a failed start, want 0", len(agents))
	}
}

func TestConcurrentSpawnsOfOneNameKeepTheOlderAgent(t *testing.T) {
	tt := newTestTown(t)
	older := tt.agent("worker")
	younger := tt.agent("Worker")
	if err := checkNameFree(tt.ctx(), tt.store, "worker", younger); err == nil || !strings.Contains(err.Error(), older.ID) {
		t.Errorf("the younger record was not told to give way: %v", err)
	}
	if err := checkNameFree(tt.ctx(), tt.store, "worker", older); err != nil {
		t.Errorf("the older record was told to give way: %v", err)
	}
	tt.setState(older.ID, town.StateStopped)
	if err := checkNameFree(tt.ctx(), tt.store, "worker", younger); err != nil {
		t.Errorf("a stopped agent blocks the name: %v", err)
	}
}

func TestSpawnForegroundRunsTheWorkerWithThisCommandsOutput(t *testing.T) {
	tt, record := spawnTown(t)
	r := tt.run("spawn", "fg", "--foreground", "--max-rounds", "0")
	out := r.ok(t)
	mustContain(t, out, "fakeloop: stdout line")
	mustContain(t, r.errOut, "fakeloop: stderr line", "in the foreground", `Agent "fg" completed`)
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	var rec fakeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	agents, _ := tt.store.ListAgents(tt.ctx())
	if len(agents) != 1 {
		t.Fatalf("%d agents, want 1", len(agents))
	}
	want := []string{"--town", tt.dir, "agent-loop", "fg", agents[0].ID, "0"}
	if !reflect.DeepEqual(rec.Args, want) || rec.Sid == rec.Pid {
		t.Errorf("worker argv %q sid %d pid %d; want %q, not in a session of its own", rec.Args, rec.Sid, rec.Pid, want)
	}
}
