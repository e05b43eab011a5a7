package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

// persistentEnv is a town whose agents' CLI is `codex` with
// [agent].persistent = true, served by the real Codex backend plugin
// against the fake app-server (plugins/codex/internal/fakeappserver): a
// command that does not start with `codex` is launched as given, so the
// plugin drives the fake exactly as it drives `codex app-server`. The
// fake records every message it receives in work/fake.log and every start
// in work/fake.starts.
func persistentEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	fake := sdktest.Build(t, "github.com/tthost/tthost/plugins/codex/internal/fakeappserver", "bin/fake-codex-app-server")
	e.cfg.DefaultCLI = "codex"
	e.cfg.Agent.Persistent = true
	cli := e.cfg.AgentCLIs["codex"]
	cli.Command = fake
	e.cfg.AgentCLIs["codex"] = cli
	e.saveConfig()
	e.extraEnv = append(e.extraEnv,
		"FAKE_CODEX_LOG="+filepath.Join(e.work, "fake.log"),
		"FAKE_CODEX_STARTS="+filepath.Join(e.work, "fake.starts"))
	return e
}

func (e *env) codexAgent(name string) *town.Agent {
	e.t.Helper()
	a, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: name, CLI: "codex"})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// fakeMsg is one message the fake app-server received.
type fakeMsg struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

func (m fakeMsg) text() string { return string(m.Params) }

// fakeLog reads what the fake app-server received so far.
func (e *env) fakeLog() []fakeMsg {
	f, err := os.Open(filepath.Join(e.work, "fake.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []fakeMsg
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m fakeMsg
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) fakeCalls(method string) []fakeMsg {
	var out []fakeMsg
	for _, m := range e.fakeLog() {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) fakeStarts() int {
	b, _ := os.ReadFile(filepath.Join(e.work, "fake.starts"))
	return strings.Count(string(b), "start")
}

func TestPersistentReusesOneAppServerAcrossTurns(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("backend")
	e.send(a.ID, "FIRST_TURN TOOL_CALL=1")
	p := e.agentLoop(a, 2)
	e.waitEvent(a.ID, long, "round 1 completed", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.HasPrefix(ev.Message, "Round 1 completed")
	})
	e.send(a.ID, "SECOND_TURN")
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if n := e.fakeStarts(); n != 1 {
		t.Errorf("the app-server started %d times, want once for both turns", n)
	}
	starts := e.fakeCalls("turn/start")
	if len(starts) != 2 || !strings.Contains(starts[0].text(), "FIRST_TURN") || !strings.Contains(starts[1].text(), "SECOND_TURN") {
		t.Fatalf("turn/start calls: %v", starts)
	}
	if !strings.Contains(starts[0].text(), `"sandboxPolicy":{"type":"dangerFullAccess"}`) {
		t.Errorf("sandboxPolicy is not the camelCase object codex wants: %s", starts[0].text())
	}
	got := e.getAgent(a.ID)
	if got.State != town.StateStopped || got.RoundsCompleted != 2 || got.RuntimeSessionID != "fake-thread-1" {
		t.Errorf("state %s rounds %d runtime_session_id %q; want stopped, 2, fake-thread-1", got.State, got.RoundsCompleted, got.RuntimeSessionID)
	}
	ev := e.waitEvent(a.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "codex backend") {
		t.Errorf("backend choice: %q", ev.Message)
	}
}

func TestPersistentSteersAnUrgentMessageIntoTheRunningTurn(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("steerer")
	e.send(a.ID, "FIRST_TURN SLEEP_MS=1500")
	p := e.agentLoop(a, 1)
	e.waitEventType(a.ID, town.EventAgentTurnStarted, long)
	if err := e.store.SendUrgent(e.ctx(), town.NewQuery(town.SupervisorID, a.ID, "URGENT_PING")); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	steers := e.fakeCalls("turn/steer")
	if len(steers) != 1 || !strings.Contains(steers[0].text(), "URGENT_PING") || !strings.Contains(steers[0].text(), "expectedTurnId") {
		t.Fatalf("turn/steer calls: %v", steers)
	}
	if n := len(e.fakeCalls("turn/start")); n != 1 {
		t.Errorf("%d turn/start calls; the urgent message must not start a turn of its own", n)
	}
	if e.fakeStarts() != 1 {
		t.Errorf("the app-server was restarted")
	}
	got := e.getAgent(a.ID)
	if got.State != town.StateStopped || got.RoundsCompleted != 1 {
		t.Errorf("state %s rounds %d; want stopped, 1 (a steer adds no round)", got.State, got.RoundsCompleted)
	}
	if n := e.inFlightLen(a.ID) + e.inboxLen(a.ID); n != 0 {
		t.Errorf("%d message(s) left; the steered message is settled with its turn", n)
	}
}

func TestPersistentUrgentWithRegularWorkIsSteeredInInOrder(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("sorter")
	e.send(a.ID, "REGULAR_WORK SLEEP_MS=1000")
	for _, text := range []string{"URGENT_A", "URGENT_B"} {
		if err := e.store.SendUrgent(e.ctx(), town.NewQuery(town.SupervisorID, a.ID, text)); err != nil {
			t.Fatal(err)
		}
	}
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	starts := e.fakeCalls("turn/start")
	if len(starts) != 1 || strings.Contains(starts[0].text(), "URGENT_") {
		t.Fatalf("the turn must start with the regular work only: %v", starts)
	}
	var steered strings.Builder
	for _, s := range e.fakeCalls("turn/steer") {
		steered.WriteString(s.text())
	}
	all := steered.String()
	ia, ib := strings.Index(all, "URGENT_A"), strings.Index(all, "URGENT_B")
	if ia < 0 || ib < ia {
		t.Errorf("urgent messages steered out of order (A@%d B@%d): %s", ia, ib, all)
	}
}

func TestPersistentStopInterruptsTheLiveTurnQuickly(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("long")
	m := e.send(a.ID, "LONG_TURN SLEEP_MS=30000")
	p := e.agentLoop(a, 10)
	e.waitEventType(a.ID, town.EventAgentTurnStarted, long)
	stopAt := time.Now()
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	t.Logf("stop request to agent-loop exit: %v", time.Since(stopAt))
	if n := len(e.fakeCalls("turn/interrupt")); n != 1 {
		t.Errorf("turn/interrupt sent %d times, want 1", n)
	}
	msgs, _, _ := e.store.PeekInbox(context.Background(), a.ID, 10)
	if len(msgs) != 1 || msgs[0].ID != m.ID {
		t.Errorf("the interrupted message was not re-queued: %v", msgs)
	}
	if got := e.getAgent(a.ID); got.State != town.StateStopped || got.RoundsCompleted != 0 {
		t.Errorf("state %s rounds %d; want stopped, 0", got.State, got.RoundsCompleted)
	}
}

func TestPersistentPauseInterruptsAndResumeContinuesTheSameThread(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("napper")
	e.send(a.ID, "NAP SLEEP_MS=30000")
	p := e.agentLoop(a, 2)
	e.waitEventType(a.ID, town.EventAgentTurnStarted, long)
	if err := e.store.SetAgentState(e.ctx(), a.ID, town.StatePaused); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Wake(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(a.ID, long, "turn interrupted", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.Contains(ev.Message, "interrupted (pause)")
	})
	if got := e.getAgent(a.ID); got.State != town.StatePaused {
		t.Fatalf("state %s while paused", got.State)
	}
	// Resume with different work: the same thread (and process) continues.
	if _, err := e.redis.Client.Del(e.ctx(), e.store.Keys().Inbox(a.ID)).Result(); err != nil {
		t.Fatal(err)
	}
	e.send(a.ID, "AFTER_RESUME")
	if err := e.store.SetAgentState(e.ctx(), a.ID, town.StateIdle); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Wake(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(a.ID, long, "round after resume", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.Contains(ev.Message, "completed")
	})
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if e.fakeStarts() != 1 {
		t.Errorf("the app-server was restarted across pause and resume (%d starts)", e.fakeStarts())
	}
	starts := e.fakeCalls("turn/start")
	if len(starts) != 2 || !strings.Contains(starts[1].text(), "AFTER_RESUME") || !strings.Contains(starts[1].text(), `"threadId":"fake-thread-1"`) {
		t.Errorf("turn/start calls: %v", starts)
	}
}

func TestPersistentAppServerCrashResumesTheThreadAndRedelivers(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("crashy")
	e.send(a.ID, "SURVIVE SLEEP_MS=2000")
	p := e.agentLoop(a, 1)
	e.waitEventType(a.ID, town.EventAgentTurnStarted, long)
	killFake(t, e)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if n := e.fakeStarts(); n != 2 {
		t.Errorf("app-server starts %d, want 2 (crash, then reopened)", n)
	}
	resumes := e.fakeCalls("thread/resume")
	if len(resumes) != 1 || !strings.Contains(resumes[0].text(), "fake-thread-1") {
		t.Errorf("the reopened session did not resume the thread: %v", resumes)
	}
	starts := e.fakeCalls("turn/start")
	if len(starts) != 2 || !strings.Contains(starts[1].text(), "SURVIVE") {
		t.Errorf("the message was not delivered again: %v", starts)
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s", got.RoundsCompleted, got.State)
	}
	if act := e.activity(a.ID); !strings.Contains(act, "re-queued") && !strings.Contains(act, "failed") {
		t.Errorf("the crash is not in the activity log:\n%s", act)
	}
}

// killFake SIGKILLs the fake app-server (found by its command line among
// the test's processes).
func killFake(t *testing.T, e *env) {
	t.Helper()
	for _, pid := range e.procs.Alive() {
		if strings.Contains(sdktest.Cmdline(pid), "fake-codex-app-server") {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("no fake app-server process found")
}

func TestPersistentHostRestartResumesTheSavedThread(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("phoenix")
	e.send(a.ID, "FIRST SLEEP_MS=30000")
	p := e.agentLoop(a, 5)
	e.waitEventType(a.ID, town.EventAgentTurnStarted, long)
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, long)
	if left := e.waitOnlyRedis(10 * time.Second); len(left) > 0 {
		t.Fatalf("processes left after kill -9 of the host: %q", left)
	}
	if got := e.getAgent(a.ID); got.RuntimeSessionID != "fake-thread-1" {
		t.Fatalf("runtime_session_id %q was not saved when the session became ready", got.RuntimeSessionID)
	}
	// The new worker resumes the thread and gets the message again; make
	// it quick this time.
	if err := e.redis.Client.Del(e.ctx(), e.store.Keys().InFlight(a.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	e.send(a.ID, "AGAIN")
	p2 := e.agentLoop(a, 1)
	if code := p2.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p2.out.String())
	}
	resumes := e.fakeCalls("thread/resume")
	if len(resumes) != 1 || !strings.Contains(resumes[0].text(), `"threadId":"fake-thread-1"`) || !strings.Contains(resumes[0].text(), `"excludeTurns":true`) {
		t.Errorf("thread/resume calls: %v", resumes)
	}
}

func TestPersistentIdleTimeoutUsesThePersistentPath(t *testing.T) {
	e := persistentEnv(t)
	e.cfg.Agent.IdleTimeoutSecs = 1
	e.saveConfig()
	a := e.codexAgent("sleepy")
	p := e.agentLoop(a, 100)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	ev := e.waitEvent(a.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "persistent session through the codex backend") {
		t.Errorf("the idle-timeout case did not run on the persistent path (Tinytown's test fell back to one-shot): %q", ev.Message)
	}
	if got := e.getAgent(a.ID); got.State != town.StateStopped {
		t.Errorf("state %s", got.State)
	}
}

func TestPersistentRequestedForACLIWithoutPersistentBackendFallsBack(t *testing.T) {
	e := persistentEnv(t)
	a := e.agent("plain") // CLI "test": no persistent backend declares it
	e.send(a.ID, "work")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	ev := e.waitEvent(a.ID, long, "fallback", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if !strings.Contains(ev.Message, "falling back to a one-shot") {
		t.Errorf("fallback event: %q", ev.Message)
	}
	if act := e.activity(a.ID); !strings.Contains(act, "persistent requested but no backend plugin declares persistent sessions") {
		t.Errorf("activity lacks the fallback line:\n%s", act)
	}
}

func TestPersistentRuntimeEventsReachTheStreams(t *testing.T) {
	e := persistentEnv(t)
	a := e.codexAgent("narrator")
	e.send(a.ID, "EVENT_TURN TOOL_CALL=1")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	dump := e.dumpEvents(a.ID)
	for _, typ := range []town.EventType{town.EventAgentTurnStarted, town.EventAgentToolCall, town.EventAgentAssistantDelta, town.EventAgentTurnCompleted, town.EventAgentAwaitingInput} {
		if !strings.Contains(dump, string(typ)) {
			t.Errorf("no %s event:\n%s", typ, dump)
		}
	}
	if !strings.Contains(dump, "Token usage") {
		t.Errorf("no usage event:\n%s", dump)
	}
}
