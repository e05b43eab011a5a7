// Package e2e drives the real tthost binary and its real plugin processes
// against a real redis-server, the way users and Tinytown towns do.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk/sdktest"
)

const long = 30 * time.Second

func TestAgentLoopRunsOneTurnPerMessageAndCountsRounds(t *testing.T) {
	e := newEnv(t)
	a := e.agent("worker")
	e.send(a.ID, "first piece of work")
	p := e.agentLoop(a, 2)
	e.waitEvent(a.ID, long, "round 1 completed", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.HasPrefix(ev.Message, "Round 1 completed")
	})
	e.send(a.ID, "second piece of work")
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("agent-loop exited %d:\n%s", code, p.out.String())
	}
	got := e.getAgent(a.ID)
	if got.State != town.StateStopped || got.RoundsCompleted != 2 {
		t.Errorf("state %s, rounds_completed %d; want stopped, 2", got.State, got.RoundsCompleted)
	}
	prompts := e.prompts()
	if len(prompts) != 2 || !strings.Contains(prompts[0], "first piece of work") || !strings.Contains(prompts[1], "second piece of work") {
		t.Fatalf("the CLI saw %d prompt(s), want one per message:\n%q", len(prompts), prompts)
	}
	if !strings.Contains(prompts[0], "Task ID") && !strings.Contains(prompts[0], "from supervisor") {
		t.Errorf("prompt does not show the message's sender:\n%s", prompts[0])
	}
	for _, round := range []string{"worker_round_1.log", "worker_round_2.log"} {
		b, err := os.ReadFile(filepath.Join(e.dir, ".tt", "logs", round))
		if err != nil || !strings.Contains(string(b), "cli: handled") {
			t.Errorf("transcript %s: %v %q", round, err, b)
		}
	}
	if n := e.inFlightLen(a.ID); n != 0 {
		t.Errorf("%d message(s) left in flight", n)
	}
	if act := e.activity(a.ID); !strings.Contains(act, "Round 2: ✅ completed") {
		t.Errorf("activity lacks the round line:\n%s", act)
	}
}

func TestAgentLoopStopsAtIdleTimeout(t *testing.T) {
	e := newEnv(t)
	e.cfg.Agent.IdleTimeoutSecs = 1
	e.saveConfig()
	a := e.agent("idler")
	p := e.agentLoop(a, 100)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if got := e.getAgent(a.ID); got.State != town.StateStopped {
		t.Errorf("state %s, want stopped", got.State)
	}
	if act := e.activity(a.ID); !strings.Contains(act, "Idle timeout reached after 1s") {
		t.Errorf("activity lacks the idle timeout:\n%s", act)
	}
	if len(e.prompts()) != 0 {
		t.Errorf("the CLI ran although there was no work")
	}
}

func TestStaleTerminalCurrentTaskDoesNotBlockIdling(t *testing.T) {
	e := newEnv(t)
	e.cfg.Agent.IdleTimeoutSecs = 1
	e.saveConfig()
	a := e.agent("stale")
	task, err := e.store.CreateTask(e.ctx(), town.TaskSpec{Description: "old work", AssignedTo: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CompleteTask(e.ctx(), task.ID, "done long ago"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetCurrentTask(e.ctx(), a.ID, task.ID); err != nil {
		t.Fatal(err)
	}
	p := e.agentLoop(a, 100)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	got := e.getAgent(a.ID)
	if got.State != town.StateStopped || got.CurrentTask != "" {
		t.Errorf("state %s, current_task %q; want stopped and cleared", got.State, got.CurrentTask)
	}
}

func TestStopRequestEndsAnIdleLoop(t *testing.T) {
	e := newEnv(t)
	a := e.agent("stopper")
	e.send(a.ID, "warm up")
	p := e.agentLoop(a, 100)
	e.waitEventType(a.ID, town.EventAgentTurnCompleted, long)
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if got := e.getAgent(a.ID); got.State != town.StateStopped {
		t.Errorf("state %s, want stopped", got.State)
	}
	if stop, _ := e.store.StopRequested(context.Background(), a.ID); stop {
		t.Errorf("the stop key is still set")
	}
	if act := e.activity(a.ID); !strings.Contains(act, "🛑 stopped by request") {
		t.Errorf("activity lacks the stop line:\n%s", act)
	}
}

func TestStopInterruptsARunningTurnAndRequeuesItsMessage(t *testing.T) {
	e := newEnv(t)
	a := e.agent("busy")
	m := e.send(a.ID, "SLEEP_FOREVER please")
	p := e.agentLoop(a, 100)
	e.waitEventType(a.ID, town.EventAgentTurnStarted, long)
	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	msgs, bad, err := e.store.PeekInbox(context.Background(), a.ID, 10)
	if err != nil || bad != 0 || len(msgs) != 1 || msgs[0].ID != m.ID {
		t.Fatalf("inbox after stop: %v bad=%d err=%v; want the interrupted message back", msgs, bad, err)
	}
	if got := e.getAgent(a.ID); got.State != town.StateStopped || got.RoundsCompleted != 0 {
		t.Errorf("state %s rounds %d; want stopped, 0 (an interrupted turn is not completed work)", got.State, got.RoundsCompleted)
	}
}

func TestPauseInterruptsTheTurnAndResumeDeliversItAgain(t *testing.T) {
	e := newEnv(t)
	a := e.agent("pauser")
	e.send(a.ID, "SLEEP_ONCE then finish")
	p := e.agentLoop(a, 1)
	e.waitSleeping(a.ID)

	// What `tthost interrupt` does: state paused, then a wake signal.
	if err := e.store.SetAgentState(e.ctx(), a.ID, town.StatePaused); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Wake(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(a.ID, long, "turn interrupted", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.Contains(ev.Message, "interrupted (pause)")
	})
	if n := e.inboxLen(a.ID); n != 1 {
		t.Fatalf("inbox holds %d message(s) while paused, want the re-queued one", n)
	}
	if got := e.getAgent(a.ID); got.State != town.StatePaused {
		t.Fatalf("state %s while paused", got.State)
	}

	// What `tthost resume` does: state idle, then a wake signal.
	if err := e.store.SetAgentState(e.ctx(), a.ID, town.StateIdle); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Wake(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}
	if n := len(e.prompts()); n != 2 {
		t.Errorf("the CLI saw %d prompts, want 2 (interrupted, then delivered again)", n)
	}
}

func TestCLIFailureRequeuesTheMessage(t *testing.T) {
	e := newEnv(t)
	a := e.agent("flaky")
	m := e.send(a.ID, "FAIL_ONCE then succeed")
	p := e.agentLoop(a, 2)
	ev := e.waitEventType(a.ID, town.EventAgentRuntimeError, long)
	if !strings.Contains(ev.Message, "exit status 3") || !strings.Contains(ev.Message, "1 message(s) re-queued") {
		t.Errorf("failure event %q should name the exit status and the re-queue", ev.Message)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	prompts := e.prompts()
	if len(prompts) != 2 || !strings.Contains(prompts[1], m.Description) {
		t.Fatalf("want the failed message delivered again; prompts: %q", prompts)
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 {
		t.Errorf("rounds_completed %d, want 1 (the failed turn is not completed work)", got.RoundsCompleted)
	}
	if act := e.activity(a.ID); !strings.Contains(act, "⚠️ CLI error") {
		t.Errorf("activity lacks the CLI error:\n%s", act)
	}
}

func TestCorruptMessageGoesToTheDeadLetterList(t *testing.T) {
	e := newEnv(t)
	a := e.agent("reader")
	if err := e.redis.Client.RPush(e.ctx(), e.store.Keys().Inbox(a.ID), `{"id":"not json`).Err(); err != nil {
		t.Fatal(err)
	}
	e.send(a.ID, "a good message")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	dead, err := e.store.DeadLetters(context.Background(), a.ID)
	if err != nil || len(dead) != 1 || dead[0].Raw != `{"id":"not json` {
		t.Fatalf("dead letters %+v (%v); want the corrupt message, byte for byte", dead, err)
	}
	e.waitEvent(a.ID, long, "dead letter", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentRuntimeError && strings.Contains(ev.Message, "dead-letter")
	})
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 {
		t.Errorf("the good message was not handled: rounds %d", got.RoundsCompleted)
	}
}

func TestKillNineMidTurnThenRestartDeliversTheMessageAgain(t *testing.T) {
	e := newEnv(t)
	a := e.agent("phoenix")
	m := e.send(a.ID, "SLEEP_ONCE survive a crash")
	p := e.agentLoop(a, 1)
	e.waitSleeping(a.ID)

	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, long)
	// The plugin notices its host died and takes the CLI down with it.
	if left := e.waitOnlyRedis(10 * time.Second); len(left) > 0 {
		t.Fatalf("processes left after kill -9 of agent-loop: %q", left)
	}
	if n := e.inFlightLen(a.ID); n != 1 {
		t.Fatalf("in flight after the crash: %d, want the message", n)
	}

	p2 := e.agentLoop(a, 1)
	if code := p2.wait(t, long); code != 0 {
		t.Fatalf("restarted loop exit %d:\n%s", code, p2.out.String())
	}
	prompts := e.prompts()
	if len(prompts) != 2 || !strings.Contains(prompts[1], m.Description) {
		t.Fatalf("the message was not delivered again after the restart: %q", prompts)
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}
	if n := e.inFlightLen(a.ID); n != 0 {
		t.Errorf("%d message(s) still in flight", n)
	}
}

func TestTamperedPluginIsRefused(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	sdktest.CopyFile(t, filepath.Join(e.bin, "tthost"), filepath.Join(bin, "tthost"), 0o755)
	sdktest.CopyFile(t, filepath.Join(e.bin, "tthost-backend-oneshot"), filepath.Join(bin, "tthost-backend-oneshot"), 0o755)
	sdktest.CopyFile(t, filepath.Join(e.bin, "tthost-plugins.sha256"), filepath.Join(bin, "tthost-plugins.sha256"), 0o644)
	f, err := os.OpenFile(filepath.Join(bin, "tthost-backend-oneshot"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("tampered")); err != nil {
		t.Fatal(err)
	}
	f.Close()

	a := e.agent("careful")
	m := e.send(a.ID, "must not be lost")
	p := e.tthost(bin, "agent-loop", a.Name, a.ID, "1")
	code := p.wait(t, long)
	out := p.out.String()
	if code == 0 || !strings.Contains(out, "SHA-256") {
		t.Fatalf("exit %d; want a failure that names the checksum:\n%s", code, out)
	}
	msgs, _, _ := e.store.PeekInbox(context.Background(), a.ID, 10)
	if len(msgs) != 1 || msgs[0].ID != m.ID {
		t.Errorf("the message was lost when the plugin was refused: inbox %v", msgs)
	}
	if got := e.getAgent(a.ID); got.State != town.StateStopped {
		t.Errorf("state %s, want stopped", got.State)
	}
}

func TestPluginCrashMidTurnRedeliversAndLeavesNoCLIBehind(t *testing.T) {
	e := newEnv(t)
	a := e.agent("survivor")
	m := e.send(a.ID, "SLEEP_ONCE while the plugin dies")
	p := e.agentLoop(a, 1)
	e.waitSleeping(a.ID)

	var plugin int
	for _, pid := range e.procs.Alive() {
		if strings.Contains(sdktest.Cmdline(pid), "tthost-backend-oneshot") {
			plugin = pid
		}
	}
	if plugin == 0 {
		t.Fatal("no one-shot plugin process found")
	}
	if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	prompts := e.prompts()
	if len(prompts) != 2 || !strings.Contains(prompts[1], m.Description) {
		t.Fatalf("the message was not delivered again after the plugin crash: %q", prompts)
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}
	ev := e.waitEvent(a.ID, long, "runtime lost", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentRuntimeError && strings.Contains(ev.Message, "re-queued")
	})
	t.Logf("crash reported as: %s", ev.Message)
	// The first turn's `sleep 300` ran in a process group of its own; the
	// host killed it when the plugin died.
	if left := e.waitOnlyRedis(10 * time.Second); len(left) > 0 {
		t.Fatalf("processes left after the plugin crash: %q", left)
	}
}

func TestPluginCrashWhileIdleIsHealedBeforeTheNextTurn(t *testing.T) {
	e := newEnv(t)
	a := e.agent("healer")
	e.send(a.ID, "first")
	p := e.agentLoop(a, 2)
	e.waitEventType(a.ID, town.EventAgentTurnCompleted, long)
	for _, pid := range e.procs.Alive() {
		if strings.Contains(sdktest.Cmdline(pid), "tthost-backend-oneshot") {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.send(a.ID, "second")
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 2 {
		t.Errorf("rounds %d, want 2", got.RoundsCompleted)
	}
	if strings.Contains(e.dumpEvents(a.ID), "could not start") {
		t.Errorf("the second turn failed to start instead of reopening the session:\n%s", e.dumpEvents(a.ID))
	}
}

// A signal to the worker mid-turn (SIGHUP: its terminal closed, or a
// supervisor sent it) must end it like a stop request: the turn cancelled,
// its message back in the inbox exactly once, nothing in flight, the agent
// stopped, and no CLI or plugin process left behind.
func TestSignalMidTurnRequeuesAndLeavesTheAgentStopped(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t)
			a := e.agent("hungup")
			m := e.send(a.ID, "SLEEP_FOREVER until the signal")
			p := e.agentLoop(a, 100)
			e.waitSleeping(a.ID)
			if got := e.getAgent(a.ID); got.State != town.StateWorking {
				t.Fatalf("state %s mid-turn, want working", got.State)
			}

			if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, long); code != 0 {
				t.Fatalf("agent-loop exited %d after %s, want 0:\n%s", code, sig, p.out.String())
			}
			msgs, bad, err := e.store.PeekInbox(context.Background(), a.ID, 10)
			if err != nil || bad != 0 || len(msgs) != 1 || msgs[0].ID != m.ID {
				t.Fatalf("inbox after %s: %v bad=%d err=%v; want the interrupted message back, once", sig, msgs, bad, err)
			}
			if n := e.inFlightLen(a.ID); n != 0 {
				t.Errorf("%d message(s) left in flight", n)
			}
			if got := e.getAgent(a.ID); got.State != town.StateStopped || got.RoundsCompleted != 0 {
				t.Errorf("state %s rounds %d; want stopped, 0", got.State, got.RoundsCompleted)
			}
			if left := e.waitOnlyRedis(10 * time.Second); len(left) > 0 {
				t.Fatalf("processes left after %s: %q", sig, left)
			}
		})
	}
}

// `tthost events --follow` ends quietly on SIGHUP, as on SIGINT: following
// is what it was asked to do until interrupted.
func TestEventsFollowEndsOnSIGHUP(t *testing.T) {
	e := newEnv(t)
	a := e.agent("watched")
	ev := town.NewEvent(town.EventAgentStateChanged, "FOLLOW_STARTED_MARKER")
	ev.AgentID = a.ID
	if err := e.store.Emit(e.ctx(), ev); err != nil {
		t.Fatal(err)
	}
	p := e.tthost("", "events", "--agent", a.Name, "--follow")
	// It printed the earlier event, so it has its signal handler and follows.
	if !p.out.WaitAfter(0, "FOLLOW_STARTED_MARKER", long) {
		t.Fatalf("events --follow printed nothing:\n%s", p.out.String())
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("events --follow exited %d after SIGHUP, want 0:\n%s", code, p.out.String())
	}
}

// A 512 KB brief (under max_turn_bytes; a larger one is dead-lettered, see
// host/faults) reaches the CLI cut to Tinytown's 120 characters; the prompt
// says so and names the command that prints it whole, which works while
// the message is in flight.
func TestAPromptThatCutsAMessageNamesTheCommandThatPrintsItWhole(t *testing.T) {
	e := newEnv(t)
	a := e.agent("reader")
	brief := "SLEEP_FOREVER and read this: " + strings.Repeat("0123456789", 50<<10)
	m := e.send(a.ID, brief)
	p := e.agentLoop(a, 100)
	e.waitSleeping(a.ID)

	prompts := e.prompts()
	if len(prompts) != 1 {
		t.Fatalf("the CLI saw %d prompts, want 1", len(prompts))
	}
	note := fmt.Sprintf("(shortened: the whole message has %d characters; read it with `tthost inbox show %s`)", len(brief), m.ID)
	if !strings.Contains(prompts[0], note) {
		t.Fatalf("the prompt lacks %q:\n%s", note, prompts[0])
	}
	show := e.tthost("", "inbox", "show", m.ID, "--agent", a.Name, "--json")
	if code := show.wait(t, long); code != 0 {
		t.Fatalf("inbox show exited %d:\n%.2000s", code, show.out.String())
	}
	var v struct{ Place, Text string }
	if err := json.Unmarshal([]byte(show.out.String()), &v); err != nil || v.Place != "in_flight" || v.Text != brief {
		t.Fatalf("inbox show --json: place %q, %d of %d characters, %v; want the in-flight message whole", v.Place, len(v.Text), len(brief), err)
	}

	if err := e.store.RequestStop(e.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
