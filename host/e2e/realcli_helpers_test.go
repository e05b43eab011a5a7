package e2e

// Helpers the real-CLI end-to-end tests (realacp_test.go,
// realclaude_test.go) share: rounds and events of an agent, the CLI
// process a persistent backend keeps, what `tthost status` says, and what
// a lost turn must leave behind.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/plugin"
)

// waitRound waits for the agent's "Round n completed" event.
func (e *env) waitRound(agentID string, n int, timeout time.Duration) {
	e.t.Helper()
	prefix := fmt.Sprintf("Round %d completed", n)
	e.waitEvent(agentID, timeout, prefix, func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.HasPrefix(ev.Message, prefix)
	})
}

// countEvents counts the agent's events whose message holds s.
func (e *env) countEvents(agentID, s string) int {
	e.t.Helper()
	entries, err := e.store.ReadEvents(context.Background(), e.store.Keys().EventsAgent(agentID), "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Event != nil && strings.Contains(en.Event.Message, s) {
			n++
		}
	}
	return n
}

// cliLeaders are the CLI processes the backend plugins started, among the
// test's processes: sdk/plugin.StartProcess gives each CLI a process group
// of its own and a TTHOST_PROCESS_TAG, so a group leader carrying a tag is
// a CLI (gemini, whose `sh -c exec` leaves gemini itself the leader). No
// process is recognised by its name.
func (e *env) cliLeaders() []int {
	var out []int
	for _, pid := range e.procs.Alive() {
		environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, environ...), []byte("\x00"+plugin.ProcessTagEnv+"=")) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// oneCLI returns the only CLI process alive, or fails.
func (e *env) oneCLI() int {
	e.t.Helper()
	leaders := e.cliLeaders()
	if len(leaders) != 1 {
		e.t.Fatalf("%d CLI processes alive, want 1: %v", len(leaders), leaders)
	}
	return leaders[0]
}

// statusRuntime runs `tthost status <agent> --json` and returns what it
// says serves the agent.
func (e *env) statusRuntime(name string) (sessionID string, rt map[string]any) {
	e.t.Helper()
	p := e.tthost("", "status", name, "--json")
	if code := p.wait(e.t, long); code != 0 {
		e.t.Fatalf("tthost status exited %d:\n%s", code, p.out.String())
	}
	var row struct {
		RuntimeSessionID string         `json:"runtime_session_id"`
		Runtime          map[string]any `json:"runtime"`
	}
	if err := json.Unmarshal([]byte(p.out.String()), &row); err != nil {
		e.t.Fatalf("tthost status --json: %v\n%s", err, p.out.String())
	}
	return row.RuntimeSessionID, row.Runtime
}

// deliveredOnceMore checks a message whose CLI was killed mid-turn (the
// agent "crashy", one round): the lost turn was reported and its message
// re-queued, a new session (the second session_ready on backend) ran it
// to one completed round, and nothing is left queued, in flight or dead.
func (e *env) deliveredOnceMore(a *town.Agent, m *town.Message, backend string) {
	t := e.t
	t.Helper()
	dump := e.dumpEvents(a.ID)
	if n := e.countEvents(a.ID, "Round 1 completed"); n != 1 {
		t.Errorf("%d 'Round 1 completed' events, want 1:\n%s", n, dump)
	}
	if !strings.Contains(dump, "Assistant delta: echo: # Agent: "+a.Name) {
		t.Errorf("the delivered message's answer is not in the event stream:\n%s", dump)
	}
	if !strings.Contains(dump, "re-queued") {
		t.Errorf("the lost turn is not reported with its message re-queued:\n%s", dump)
	}
	if n := e.countEvents(a.ID, "Runtime session ready on the "+backend+" backend"); n != 2 {
		t.Errorf("%d session_ready events, want 2 (the killed CLI's session, then its replacement)", n)
	}
	got := e.getAgent(a.ID)
	if got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}
	if n := e.inboxLen(a.ID) + e.inFlightLen(a.ID); n != 0 {
		t.Errorf("%d message(s) left; the message was delivered once more and settled", n)
	}
	if dl, err := e.store.DeadLetters(e.ctx(), a.ID); err != nil || len(dl) != 0 {
		t.Errorf("dead letters %v (%v)", dl, err)
	}
	if msgs, _, _ := e.store.PeekInbox(context.Background(), a.ID, 10); slices.ContainsFunc(msgs, func(x *town.Message) bool { return x.ID == m.ID }) {
		t.Errorf("message %s is still queued after its round completed", m.ID)
	}
}

// stopDuringALongTurn sends an endless streamed answer (ENDLESS
// SLOW_STREAM), stops it once its first tick is in the event stream, and
// checks that the worker exited with the message back in the inbox once,
// nothing in flight, the round reported interrupted, and no process left
// but Redis. The caller checks its mock's requests.
func (e *env) stopDuringALongTurn(a *town.Agent, timeout time.Duration, cli string) {
	t := e.t
	t.Helper()
	m := e.send(a.ID, "ENDLESS SLOW_STREAM")
	p := e.agentLoop(a, 5)
	e.waitEvent(a.ID, timeout, "a tick of the long answer", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentAssistantDelta && strings.Contains(ev.Message, "tick")
	})
	stopAt := time.Now()
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, timeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	t.Logf("stop request to agent-loop exit (%s): %v", cli, time.Since(stopAt).Round(time.Millisecond))
	msgs, _, _ := e.store.PeekInbox(context.Background(), a.ID, 10)
	if len(msgs) != 1 || msgs[0].ID != m.ID {
		t.Errorf("the interrupted message is not back in the inbox, once: %v", msgs)
	}
	if n := e.inFlightLen(a.ID); n != 0 {
		t.Errorf("%d message(s) left in flight", n)
	}
	if !strings.Contains(e.dumpEvents(a.ID), "Round 1 interrupted (stop)") {
		t.Errorf("no interrupted turn event:\n%s", e.dumpEvents(a.ID))
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 0 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 0, stopped", got.RoundsCompleted, got.State)
	}
	if left := e.waitOnlyRedis(10 * time.Second); len(left) > 0 {
		t.Errorf("processes left after the stop: %q", left)
	}
}

// twoTurnsInOneProcess runs a text turn (FIRST_TEXT) then a tool turn
// (SECOND TOOL_CALL) through one worker and checks that both ran in one CLI
// process and one session, that `tthost status` shows backend, persistent,
// steerMode and the saved session, and that the worker stopped with two
// rounds. It returns the session id status showed; the caller checks its
// mock's requests.
func (e *env) twoTurnsInOneProcess(a *town.Agent, timeout time.Duration, backend, steerMode string) string {
	t := e.t
	t.Helper()
	e.send(a.ID, "FIRST_TEXT say hello")
	p := e.agentLoop(a, 3)
	e.waitRound(a.ID, 1, timeout)
	pid := e.oneCLI()
	e.send(a.ID, "SECOND TOOL_CALL please run something")
	e.waitRound(a.ID, 2, timeout)
	if got := e.oneCLI(); got != pid {
		t.Errorf("the second turn ran in CLI process %d, the first in %d", got, pid)
	}
	// What serves the agent, as the worker recorded it and status shows it.
	sid, rt := e.statusRuntime(a.Name)
	if rt == nil || rt["backend"] != backend || rt["persistent"] != true || rt["steer_mode"] != steerMode || sid == "" || rt["session_id"] != sid {
		t.Errorf("tthost status: runtime_session_id %q, runtime %v; want %s, persistent, steer mode %s, the saved session", sid, rt, backend, steerMode)
	}
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, timeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if n := e.countEvents(a.ID, "Runtime session ready on the "+backend+" backend"); n != 1 {
		t.Errorf("%d session_ready events, want 1 (one session for both turns)", n)
	}
	got := e.getAgent(a.ID)
	if got.RoundsCompleted != 2 || got.RuntimeSessionID != sid || got.State != town.StateStopped {
		t.Errorf("rounds %d runtime_session_id %q (status said %q) state %s", got.RoundsCompleted, got.RuntimeSessionID, sid, got.State)
	}
	return sid
}

// resumedBySecondWorker runs one round (ORIGINAL_FACT) in a worker, then
// another (REMEMBER) in a second worker, which must resume the session the
// first saved: it says so, no context was lost, the agent keeps the
// session id, and both workers' session_ready events name it. It returns
// the second worker's process; the caller checks its mock's requests and
// the answer.
func (e *env) resumedBySecondWorker(a *town.Agent, backend string, timeout, resumeTimeout time.Duration) *proc {
	t := e.t
	t.Helper()
	e.send(a.ID, "ORIGINAL_FACT the sky is green")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, timeout); code != 0 {
		t.Fatalf("first worker exit %d:\n%s", code, p.out.String())
	}
	saved := e.getAgent(a.ID).RuntimeSessionID
	if saved == "" {
		t.Fatal("no runtime_session_id saved")
	}
	e.send(a.ID, "REMEMBER what was said")
	p2 := e.agentLoop(a, 1)
	if code := p2.wait(t, resumeTimeout); code != 0 {
		t.Fatalf("second worker exit %d:\n%s", code, p2.out.String())
	}
	if !strings.Contains(p2.out.String(), "Resuming the saved runtime session "+saved) {
		t.Errorf("the second worker did not say it resumed:\n%s", p2.out.String())
	}
	if dump := e.dumpEvents(a.ID); strings.Contains(dump, "could not be resumed") {
		t.Errorf("the saved session was not resumed:\n%s", dump)
	}
	got := e.getAgent(a.ID)
	if got.RuntimeSessionID != saved || got.RoundsCompleted != 2 {
		t.Errorf("runtime_session_id %q (saved %q) rounds %d, want the same session, 2 rounds", got.RuntimeSessionID, saved, got.RoundsCompleted)
	}
	if n := e.countEvents(a.ID, "Runtime session ready on the "+backend+" backend: session "+saved); n != 2 {
		t.Errorf("%d session_ready events name session %s, want 2 (opened, then resumed)", n, saved)
	}
	return p2
}

// killCLIMidTurn sends SURVIVE to the agent "crashy" (one round), kills the
// CLI's process group once the turn's first tick is in the event stream,
// and waits up to exitTimeout for the worker, which must exit cleanly. It
// returns the message; the caller checks its mock's requests, then
// deliveredOnceMore.
func (e *env) killCLIMidTurn(a *town.Agent, cli string, timeout, exitTimeout time.Duration) *town.Message {
	t := e.t
	t.Helper()
	m := e.send(a.ID, "SURVIVE the crash")
	p := e.agentLoop(a, 1)
	e.waitEvent(a.ID, timeout, "a tick of the first attempt", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentAssistantDelta && strings.Contains(ev.Message, "tick")
	})
	first := e.oneCLI()
	if err := syscall.Kill(-first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s's process group %d (found by its process tag)", cli, first)
	if code := p.wait(t, exitTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	return m
}
