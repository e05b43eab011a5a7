package faults

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
)

// reportsOutage is what a worker prints once a command has failed past
// go-redis's own retries and its outage hook waits for Redis.
const reportsOutage = "Redis is unreachable"

// Redis dies (kill -9) while three workers wait for work and comes back on
// the same port once every worker has reported the outage (so each has
// been through go-redis's own retries): every worker rides the outage out
// and runs a message sent afterwards exactly once.
func TestRedisKilledWhileAgentsWaitAndRestartedOnTheSamePort(t *testing.T) {
	e := newEnv(t, settings{"redis_outage_secs": 60})
	var agents []*town.Agent
	var loops []*proc
	for i := range 3 {
		a := e.agent(fmt.Sprintf("waiter%d", i+1))
		agents = append(agents, a)
		loops = append(loops, e.agentLoop(a, 100))
	}
	for i, a := range agents {
		e.waitState(a.ID, town.StateIdle, loops[i])
	}

	marks := make([]int, len(loops))
	for i, p := range loops {
		marks[i] = p.out.Len()
	}
	e.redis.Kill9()
	for i, p := range loops {
		if !p.out.WaitAfter(marks[i], reportsOutage, long) {
			t.Fatalf("%s did not report the outage within %s:\n%s", p.name, long, p.out.String())
		}
	}
	e.redis.Restart()

	var died []string
	for _, p := range loops {
		if p.exited() {
			died = append(died, fmt.Sprintf("%s: %s", p.name, p.how()))
		}
	}
	if len(died) > 0 {
		t.Fatalf("workers exited during a Redis outage (redis_outage_secs = 60):\n  %s", strings.Join(died, "\n  "))
	}

	var tokens []string
	for _, a := range agents {
		tokens = append(tokens, e.send(a.ID, "after the outage"))
	}
	r := e.waitEnded(long, loops, tokens...)
	e.assertOnce(r, tokens...)
	var ids []string
	for i, a := range agents {
		e.stop(loops[i], a.ID)
		ids = append(ids, a.ID)
	}
	e.assertOnce(e.readRuns(), tokens...)
	e.assertClean(ids...)
}

// Redis dies (kill -9) during a turn and the turn ends while it is down.
// The outcome (the ack, the round count, the completion event) is kept and
// written once Redis is back, so the message is acknowledged and a later
// worker does not run the finished turn again. Redis comes back either as
// soon as the turn has ended, while go-redis's own retries still hide the
// outage, or only once the worker has reported it (its outage hook waits).
func TestRedisKilledMidTurnKeepsTheTurnsOutcomeUntilItReturns(t *testing.T) {
	t.Run("back within go-redis's retries", func(t *testing.T) { redisKilledMidTurn(t, false) })
	t.Run("back after the worker reported the outage", func(t *testing.T) { redisKilledMidTurn(t, true) })
}

func redisKilledMidTurn(t *testing.T, untilReported bool) {
	e := newEnv(t, settings{"redis_outage_secs": 60})
	a := e.agent("steadfast")
	tok := e.send(a.ID, "SLEEP=1 across a Redis crash")
	p := e.agentLoop(a, 100)
	e.waitStarted(long, tok, 1, p)

	mark := p.out.Len()
	e.redis.Kill9()
	// The CLI sleeps 1 s: its turn ends while Redis is down.
	e.waitEnded(long, nil, tok)
	if untilReported && !p.out.WaitAfter(mark, reportsOutage, long) {
		t.Fatalf("the worker did not report the outage within %s:\n%s", long, p.out.String())
	}
	e.redis.Restart()

	// Once Redis is back the worker writes what it kept: the ack, the
	// round, the completion.
	ok := e.poll(long, func() bool {
		if p.exited() {
			return true
		}
		ag, err := e.store.GetAgent(e.ctx(), a.ID)
		n, err2 := e.store.InFlightLen(e.ctx(), a.ID)
		m, err3 := e.store.InboxLen(e.ctx(), a.ID)
		return err == nil && err2 == nil && err3 == nil && ag.RoundsCompleted == 1 && n == 0 && m == 0
	})
	if p.exited() {
		t.Errorf("the worker exited (%s) across a Redis outage (redis_outage_secs = 60)", p.how())
	}
	if !ok || p.exited() {
		ag := e.getAgent(a.ID)
		t.Errorf("after Redis returned: rounds_completed %d, in flight %q, inbox %q; want 1, nothing, nothing (the finished turn acknowledged)",
			ag.RoundsCompleted, e.list(e.store.Keys().InFlight(a.ID)), e.inboxTokens(a.ID))
	}
	// The completion event is written just after the ack and the round.
	e.findEvent(a.ID, long, func(ev *town.TownEvent) bool { return kindOf(ev) == "turn_completed" })
	if evs := e.eventsOfKind(a.ID, "turn_completed"); len(evs) != 1 || !strings.HasPrefix(evs[0].Message, "Round 1 completed") {
		t.Errorf("want one turn_completed event for round 1; events:\n%s", e.dumpEvents(a.ID))
	}
	if !p.exited() {
		e.stop(p, a.ID)
	}

	// A new worker must not find the finished turn's message anywhere.
	p2 := e.agentLoop(a, 100)
	e.waitState(a.ID, town.StateIdle, p2)
	tok2 := e.send(a.ID, "after the restart")
	r := e.waitEnded(long, []*proc{p2}, tok2)
	// The CLI's end is not yet the worker's outcome: a stop sent before the
	// worker has seen the exit interrupts the turn and re-queues its message.
	e.waitFor(long, "the second worker's round to be counted", func() bool { return e.getAgent(a.ID).RoundsCompleted == 2 })
	e.stop(p2, a.ID)
	r = e.readRuns()
	e.assertOnce(r, tok, tok2)
	if got := e.getAgent(a.ID).RoundsCompleted; got != 2 {
		t.Errorf("rounds_completed %d after both workers, want 2", got)
	}
	e.assertClean(a.ID)
}

// A stop (SIGTERM) while Redis is down mid-turn does not wait for the whole
// outage bound: the worker cancels its turn, waits a little for Redis, and
// exits; the message stays in flight, and once Redis is back a new worker
// runs it to completion once, with no overlap.
func TestSIGTERMDuringAnOutageExitsAndLeavesTheMessageForTheNextWorker(t *testing.T) {
	e := newEnv(t, settings{"redis_outage_secs": 300})
	a := e.agent("patient")
	tok := e.send(a.ID, "SLEEP_FIRST=300 interrupted during an outage")
	p := e.agentLoop(a, 100)
	e.waitStarted(long, tok, 1, p)

	e.redis.Kill9()
	p.signal(t, syscall.SIGTERM)
	// 10 s of grace for Redis, then the exit; well under the 300 s bound.
	if _, ok := p.waitExit(45 * time.Second); !ok {
		t.Fatalf("the worker did not exit within 45s of SIGTERM during an outage:\n%s", p.out.String())
	}
	e.redis.Restart()
	if n := e.inFlightLen(a.ID) + int64(len(e.inboxTokens(a.ID))); n != 1 {
		t.Fatalf("after the exit: %d message(s) in flight or queued, want the one", n)
	}

	p2 := e.agentLoop(a, 100)
	r := e.waitEnded(long, []*proc{p2}, tok)
	e.stop(p2, a.ID)
	e.assertRuns(r, tok, 2, 1)
	e.assertClean(a.ID)
}
