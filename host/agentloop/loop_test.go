package agentloop

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

func TestTurnIsTakenDeliveredAckedAndTheAgentIdles(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.send("write the report")
	h.start()
	s := h.session()
	in := h.nextTurn(s, nil, "write the report")

	if st := h.state(); st != town.StateWorking {
		t.Errorf("state %s during the turn, want working", st)
	}
	if n := h.inFlight(); n != 1 {
		t.Errorf("%d message(s) in flight during the turn, want 1", n)
	}
	if got := h.inbox(); len(got) != 0 {
		t.Errorf("inbox %q during the turn, want empty", got)
	}

	h.clock.advance(time.Minute) // the turn takes a minute by the loop's clock
	mark := h.out.Len()
	s.emit(sdk.Event{Kind: sdk.EventTurnStarted, TurnID: in.turnID})
	s.end(in.turnID, sdk.StatusCompleted, "")
	h.waitOut(mark, "✅ Round 1 completed")

	if st := h.state(); st != town.StateIdle {
		t.Errorf("state %s after the turn, want idle", st)
	}
	if n := h.inFlight(); n != 0 {
		t.Errorf("%d message(s) in flight after the turn, want 0 (acknowledged)", n)
	}
	if v := h.field("rounds_completed"); v != "1" {
		t.Errorf("rounds_completed %q, want 1", v)
	}
	// The loop's clock writes the times (town.AgentUpdate.At).
	want := town.FormatHashTime(h.clock.Now())
	for _, f := range []string{"last_active_at", "last_heartbeat"} {
		if v := h.field(f); v != want {
			t.Errorf("%s %q, want the loop's clock %q", f, v, want)
		}
	}
	h.event("Agent turn started (round 1)")
	if ev := h.event("Round 1 completed: done"); ev != nil && ev.Scope != "tthost.turn_completed" {
		t.Errorf("completion event scope %q", ev.Scope)
	}
	h.stop()
}

func TestUrgentMessageDuringATurnIsSteeredIntoIt(t *testing.T) {
	h := newHarness(t, harnessOptions{
		caps:       []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt},
		persistent: true,
	})
	h.send("refactor the parser")
	h.start()
	s := h.session()
	in := h.nextTurn(s, nil, "refactor the parser")

	urgent := town.NewTask(town.SupervisorID, h.agent.ID, "the build is red, look first")
	h.must(h.store.SendUrgent(h.ctx, urgent))
	h.wake.wake()
	st := h.next(s)
	if st.in.Kind != sdk.InputUrgent || !strings.Contains(st.in.Text, "the build is red") || st.turnID != in.turnID {
		t.Fatalf("input %s to turn %q: %q; want the urgent message steered into %q", st.in.Kind, st.turnID, st.in.Text, in.turnID)
	}
	if n := h.inFlight(); n != 2 {
		t.Errorf("%d message(s) in flight after the steer, want 2", n)
	}

	mark := h.out.Len()
	s.end(in.turnID, sdk.StatusCompleted, "")
	h.waitOut(mark, "✅ Round 1 completed")
	if n := h.inFlight(); n != 0 {
		t.Errorf("%d message(s) in flight after the turn, want 0: the steered message is acknowledged with it", n)
	}
	if n, _ := h.store.UrgentLen(h.ctx, h.agent.ID); n != 0 {
		t.Errorf("%d urgent message(s) left", n)
	}
	if ev := h.event("Steered 1 urgent message(s) into round 1"); ev != nil && ev.Scope != "tthost.steered" {
		t.Errorf("steer event scope %q", ev.Scope)
	}
	if v := h.field("rounds_completed"); v != "1" {
		t.Errorf("rounds_completed %q, want 1: a steer is not a round", v)
	}
	h.stop()
}

// A session's runtime id and steer mode reach the agent's runtime record and
// an event when it is ready, and an emulated steer says how it joined the
// round, so status and the events never pass a queued prompt off as a
// native steer.
func TestSessionReadyAndAnEmulatedSteerAreRecordedAsTheyAre(t *testing.T) {
	h := newHarness(t, harnessOptions{
		caps:       []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt},
		persistent: true,
	})
	h.send("port the module")
	h.start()
	s := h.session()
	s.mu.Lock()
	s.steerMode = sdk.SteerQueue
	s.mu.Unlock()
	s.emit(sdk.SessionReadyEvent(sdk.SessionReady{RuntimeSessionID: "sess-7", SteerMode: sdk.SteerQueue}))
	in := h.nextTurn(s, nil, "port the module")
	if ev := h.event("Runtime session ready on the fake backend: session sess-7, urgent messages steered (queue)"); ev != nil && ev.Scope != "tthost.session_ready" {
		t.Errorf("session event scope %q", ev.Scope)
	}
	rt, err := h.store.Runtime(h.ctx, h.agent.ID)
	h.must(err)
	if rt == nil || rt.Backend != "fake" || !rt.Persistent || rt.SessionID != "sess-7" || rt.SteerMode != "queue" {
		t.Errorf("runtime record %+v", rt)
	}

	mark := h.out.Len()
	h.must(h.store.SendUrgent(h.ctx, town.NewTask(town.SupervisorID, h.agent.ID, "stop the release")))
	h.wake.wake()
	if st := h.next(s); st.in.Kind != sdk.InputUrgent {
		t.Fatalf("input %s, want the urgent message steered", st.in.Kind)
	}
	h.waitOut(mark, "steered 1 urgent message(s) into the running turn (queued: prompted as soon as the CLI's running prompt ends")
	s.end(in.turnID, sdk.StatusCompleted, "")
	h.waitOut(mark, "✅ Round 1 completed")
	h.stop()
}

func TestStopOrPauseInterruptsATurnAndRequeuesItsMessages(t *testing.T) {
	for _, tc := range []struct {
		cause turnCause
		do    func(h *harness)
	}{
		{causeStop, func(h *harness) { h.must(h.store.RequestStop(h.ctx, h.agent.ID)) }},
		{causePause, func(h *harness) { h.interrupt() }},
	} {
		t.Run(string(tc.cause), func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			texts := []string{"first job", "second job"}
			for _, x := range texts {
				h.send(x)
			}
			h.start()
			s := h.session()
			in := h.nextTurn(s, texts, texts...)

			mark := h.out.Len()
			tc.do(h)
			h.wake.wake()
			if c := h.next(s); c.in.Kind != sdk.InputCancel {
				t.Fatalf("input %s after the %s, want a cancel", c.in.Kind, tc.cause)
			}
			h.waitOut(mark, "⏹️ Round 1: "+string(tc.cause)+" requested during the turn; cancelling the turn")
			s.end(in.turnID, sdk.StatusInterrupted, "")
			h.waitOut(mark, "Round 1 interrupted ("+string(tc.cause)+"); 2 message(s) re-queued")

			if tc.cause == causeStop {
				if err := h.exited(); err != nil {
					t.Fatalf("Run after a stop: %v", err)
				}
				if st := h.state(); st != town.StateStopped {
					t.Errorf("state %s, want stopped", st)
				}
				if stop, _ := h.store.StopRequested(h.ctx, h.agent.ID); stop {
					t.Error("the stop flag is still set after the loop ended")
				}
			} else {
				h.waitOut(mark, "⏸️ Agent is paused; waiting for resume")
				if st := h.state(); st != town.StatePaused {
					t.Errorf("state %s, want paused", st)
				}
			}
			if got := h.inbox(); strings.Join(got, "|") != strings.Join(texts, "|") {
				t.Errorf("inbox %q, want %q back at the front in order", got, texts)
			}
			if n := h.inFlight(); n != 0 {
				t.Errorf("%d message(s) still in flight", n)
			}
			if v := h.field("rounds_completed"); v != "0" {
				t.Errorf("rounds_completed %q, want 0", v)
			}
			if ev := h.event("Round 1 interrupted (" + string(tc.cause) + "); 2 message(s) re-queued"); ev != nil && ev.Scope != "tthost.turn_interrupted" {
				t.Errorf("interruption event scope %q", ev.Scope)
			}
			if tc.cause == causePause {
				// Resumed, the agent takes the same messages again, whole.
				h.resume()
				again := h.nextTurn(s, texts, texts...)
				mark := h.out.Len()
				s.end(again.turnID, sdk.StatusCompleted, "")
				h.waitOut(mark, "✅ Round 1 completed")
				h.stop()
			}
		})
	}
}

func TestFailedTurnBacksOffAndRequeues(t *testing.T) {
	t.Run("send fails", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		var once sync.Once
		h.be.sendErr = func(in sdk.Input) (err error) {
			once.Do(func() { err = errBackendDown })
			return err
		}
		h.send("deploy")
		mark := h.out.Len()
		h.start()
		s := h.session()
		if in := h.next(s); in.err == nil || in.in.Kind != sdk.InputTurn {
			t.Fatalf("first input %s (%v), want a failed turn", in.in.Kind, in.err)
		}
		h.waitOut(mark, "⏳ Backing off 1s after 1 failure(s) in a row")
		if got := h.inbox(); len(got) != 1 || got[0] != "deploy" {
			t.Errorf("inbox %q during the backoff, want the message back", got)
		}
		if ev := h.event("Round 1: turn could not start: backend down; 1 message(s) re-queued"); ev != nil && ev.Scope != "tthost.runtime_error" {
			t.Errorf("error event scope %q", ev.Scope)
		}
		quiet(t, s)

		// The backoff ends by the loop's clock.
		h.clock.advance(time.Second)
		h.wake.wake()
		in := h.nextTurn(s, nil, "deploy")
		mark = h.out.Len()
		s.end(in.turnID, sdk.StatusCompleted, "")
		h.waitOut(mark, "✅ Round 1 completed")
		h.stop()
	})

	t.Run("turn fails", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		h.send("migrate")
		mark := h.out.Len()
		h.start()
		s := h.session()
		in := h.nextTurn(s, nil, "migrate")
		s.end(in.turnID, sdk.StatusFailed, "exit status 3")
		h.waitOut(mark, "⏳ Backing off 1s after 1 failure(s) in a row")
		if got := h.inbox(); len(got) != 1 || got[0] != "migrate" {
			t.Errorf("inbox %q during the backoff, want the message back", got)
		}
		if n := h.inFlight(); n != 0 {
			t.Errorf("%d message(s) in flight during the backoff", n)
		}
		if st := h.state(); st != town.StateIdle {
			t.Errorf("state %s during the backoff, want idle", st)
		}
		h.event("Round 1 failed: exit status 3; 1 message(s) re-queued")
		quiet(t, s)

		// A second failure doubles the wait.
		h.clock.advance(time.Second)
		h.wake.wake()
		in = h.nextTurn(s, nil, "migrate")
		mark = h.out.Len()
		s.end(in.turnID, sdk.StatusFailed, "exit status 3")
		h.waitOut(mark, "⏳ Backing off 2s after 2 failure(s) in a row")

		h.clock.advance(2 * time.Second)
		h.wake.wake()
		in = h.nextTurn(s, nil, "migrate")
		if !strings.Contains(in.in.Text, "Round: 3/100") {
			t.Errorf("the third attempt's prompt does not say round 3 (failed attempts count):\n%s", in.in.Text)
		}
		mark = h.out.Len()
		s.end(in.turnID, sdk.StatusCompleted, "")
		h.waitOut(mark, "✅ Round 3 completed")
		if v := h.field("rounds_completed"); v != "1" {
			t.Errorf("rounds_completed %q, want 1: failed turns are not completed work", v)
		}
		h.stop()
	})
}

func TestBoundedIntakeSplitsTurns(t *testing.T) {
	t.Run("max_turn_messages", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *config.Config) { c.TTHost.MaxTurnMessages = 2 }})
		texts := []string{"alpha", "bravo", "charlie", "delta", "echo"}
		for _, x := range texts {
			h.send(x)
		}
		h.start()
		s := h.session()
		for i, want := range [][]string{{"alpha", "bravo"}, {"charlie", "delta"}, {"echo"}} {
			in := h.nextTurn(s, texts, want...)
			if n := h.inFlight(); n != int64(len(want)) {
				t.Errorf("turn %d: %d in flight, want %d", i+1, n, len(want))
			}
			mark := h.out.Len()
			s.end(in.turnID, sdk.StatusCompleted, "")
			h.waitOut(mark, "completed")
		}
		if v := h.field("rounds_completed"); v != "3" {
			t.Errorf("rounds_completed %q, want 3", v)
		}
		h.stop()
	})

	t.Run("max_turn_bytes", func(t *testing.T) {
		// Three messages of one size; a turn holds two. One larger than a
		// whole turn is set aside, not delivered, and does not block the
		// queue.
		pad := strings.Repeat("x", 300)
		texts := []string{"alpha " + pad, "bravo " + pad, "chuck " + pad}
		size := 0
		for _, x := range texts {
			raw, err := town.NewTask(town.SupervisorID, town.NewID(), x).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			size = max(size, len(raw))
		}
		h := newHarness(t, harnessOptions{config: func(c *config.Config) { c.TTHost.MaxTurnBytes = 2*size + size/2 }})
		huge := "huge " + strings.Repeat("y", 3*size)
		// No notifications: the loop must go on to the next intake by
		// itself, as after any intake that left messages behind.
		for _, x := range []string{texts[0], huge, texts[1], texts[2]} {
			h.put(x)
		}
		h.start()
		s := h.session()
		// The first intake stops before the huge message: alpha alone. The
		// second takes the huge one alone and sets it aside.
		for _, want := range [][]string{{"alpha"}, {"bravo", "chuck"}} {
			in := h.nextTurn(s, []string{"alpha", "bravo", "chuck", "huge"}, want...)
			mark := h.out.Len()
			s.end(in.turnID, sdk.StatusCompleted, "")
			h.waitOut(mark, "completed")
		}
		if !strings.Contains(h.out.String(), "larger than max_turn_bytes") {
			t.Errorf("the loop did not say why it set the huge message aside; output:\n%s", h.out.String())
		}
		dl, err := h.store.DeadLetters(h.ctx, h.agent.ID)
		h.must(err)
		if len(dl) != 1 || !strings.Contains(dl[0].Raw, "huge ") {
			t.Errorf("dead letters %+v, want the huge message", dl)
		}
		h.event("Moved to the dead-letter list: message")
		h.stop()
	})
}

// The race becomeIdle had: the loop read the state, an interrupt landed,
// and the loop wrote idle over it; the agent then took its next message
// although it was paused. setState's write is conditional in Redis, so an
// interrupt landing right before it (the hook) stands.
func TestInterruptLandingBeforeTheIdleWriteIsKept(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var once sync.Once
	h.loop.beforeStateWrite = func(to town.AgentState) {
		if to == town.StateIdle {
			once.Do(h.interrupt)
		}
	}
	h.send("first")
	h.start()
	s := h.session()
	in := h.nextTurn(s, nil, "first")
	h.clock.advance(time.Minute)
	mark := h.out.Len()
	s.end(in.turnID, sdk.StatusCompleted, "")
	h.waitOut(mark, "✅ Round 1 completed")

	if st := h.state(); st != town.StatePaused {
		t.Fatalf("state %s after the turn, want paused: the interrupt was overwritten", st)
	}
	h.waitOut(mark, "⏸️ Agent became paused meanwhile: leaving it paused rather than marking it idle")
	// The rest of the update was written: only the state was held.
	if v, want := h.field("last_active_at"), town.FormatHashTime(h.clock.Now()); v != want {
		t.Errorf("last_active_at %q, want %q", v, want)
	}
	if n := h.inFlight(); n != 0 {
		t.Errorf("%d in flight: the completed turn was not acknowledged", n)
	}

	// Paused, the agent takes nothing.
	h.send("second")
	h.settled()
	quiet(t, s)
	if got := h.inbox(); len(got) != 1 || got[0] != "second" {
		t.Errorf("inbox %q while paused, want the new message waiting", got)
	}

	h.resume()
	in = h.nextTurn(s, nil, "second")
	mark = h.out.Len()
	s.end(in.turnID, sdk.StatusCompleted, "")
	h.waitOut(mark, "✅ Round 2 completed")
	if st := h.state(); st != town.StateIdle {
		t.Errorf("state %s after the resumed turn, want idle", st)
	}
	h.stop()
}

// The same race before a turn: the intake saw the agent running, then an
// interrupt landed before the working write. The turn does not start and
// its messages go back untouched.
func TestInterruptLandingBeforeTheWorkingWriteStopsTheTurn(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var once sync.Once
	h.loop.beforeStateWrite = func(to town.AgentState) {
		if to == town.StateWorking {
			once.Do(h.interrupt)
		}
	}
	texts := []string{"one", "two"}
	for _, x := range texts {
		h.send(x)
	}
	mark := h.out.Len()
	h.start()
	h.waitOut(mark, "⏸️ Agent became paused meanwhile: leaving it paused rather than marking it working")
	h.settled()
	select {
	case <-h.be.sessions:
		t.Fatal("a session was opened for a turn that must not start")
	default:
	}
	if st := h.state(); st != town.StatePaused {
		t.Errorf("state %s, want paused", st)
	}
	if got := h.inbox(); strings.Join(got, "|") != "one|two" {
		t.Errorf("inbox %q, want both messages back in order", got)
	}
	if n := h.inFlight(); n != 0 {
		t.Errorf("%d in flight", n)
	}

	h.resume()
	s := h.session()
	in := h.nextTurn(s, texts, texts...)
	mark = h.out.Len()
	s.end(in.turnID, sdk.StatusCompleted, "")
	h.waitOut(mark, "✅ Round 1 completed")
	h.stop()
}

// A stopped state left by an earlier worker is not a stop: the new worker
// replaces it (setState keeps only a stop that lands while it runs).
func TestStaleStoppedStateIsReplaced(t *testing.T) {
	h := newHarness(t, harnessOptions{state: town.StateStopped})
	mark := h.out.Len()
	h.start()
	h.waitOut(mark, "📭 Inbox empty, waiting")
	if st := h.state(); st != town.StateIdle {
		t.Errorf("state %s, want idle", st)
	}
	h.stop()
}

func TestIdleTimeoutDrainsAndStopsByTheLoopsClock(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	mark := h.out.Len()
	h.start()
	h.waitOut(mark, "📭 Inbox empty, waiting")
	h.clock.advance(time.Duration(h.cfg.Agent.IdleTimeoutSecs) * time.Second)
	h.wake.wake()
	if err := h.exited(); err != nil {
		t.Fatalf("Run after the idle timeout: %v", err)
	}
	h.waitOut(mark, "🔻 Idle timeout reached after 300s, draining and stopping")
	if st := h.state(); st != town.StateStopped {
		t.Errorf("state %s, want stopped", st)
	}
}
