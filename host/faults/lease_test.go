package faults

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
)

// A worker frozen mid-turn (SIGSTOP: a paused VM, a debugger, swap) past its
// lease is replaced by a new worker for the same agent. The frozen worker's
// turn must end before the new worker delivers the message again (the
// plugin cancels the turns of a host that stops answering; the new worker
// waits out a fence period), so the message never runs twice at once. When
// the old worker wakes up it finds its lease taken, does not touch the
// in-flight list and exits non-zero naming the lease; the new one keeps
// serving.
func TestWorkerStoppedPastItsLeaseIsFencedOff(t *testing.T) {
	e := newEnv(t, settings{"heartbeat_secs": 1}) // lease TTL 3 s
	a := e.agent("sleeper")
	tok := e.send(a.ID, "SLEEP_FIRST=60 while the worker is frozen")
	pa := e.freezePastLease(a, tok)

	pb := e.agentLoop(a, 100)
	r := e.waitEnded(90*time.Second, []*proc{pb}, tok)
	e.assertRuns(r, tok, 2, 1)

	pa.signal(t, syscall.SIGCONT)
	code, ok := pa.waitExit(30 * time.Second)
	switch {
	case !ok:
		t.Errorf("the fenced worker did not exit within 30s of SIGCONT (killed now); output:\n%s", pa.out.String())
		_ = syscall.Kill(-pa.pid(), syscall.SIGKILL)
		pa.wait(t, long)
	case code == 0:
		t.Errorf("the fenced worker exited 0, want a non-zero exit naming the lease; output:\n%s", pa.out.String())
	case !strings.Contains(strings.ToLower(pa.out.String()), "lease"):
		t.Errorf("the fenced worker exited %s without mentioning the lease; output:\n%s", pa.how(), pa.out.String())
	}
	if holder, err := e.store.LeaseHolder(e.ctx(), a.ID); err != nil || holder == nil || holder.PID != pb.pid() {
		t.Errorf("lease holder %+v (%v), want the new worker (pid %d)", holder, err, pb.pid())
	}
	if pb.exited() {
		t.Fatalf("the new worker exited (%s); output:\n%s", pb.how(), pb.out.String())
	}

	// The new worker keeps serving, and keeps its lease while it waits:
	// an idle worker refreshes it every heartbeat, not every safety poll.
	tok2 := e.send(a.ID, "after the takeover")
	e.waitEnded(long, []*proc{pb}, tok2)
	e.waitState(a.ID, town.StateIdle, pb)
	if lost := e.holds(7*time.Second, func() bool {
		h, err := e.store.LeaseHolder(e.ctx(), a.ID)
		return err == nil && h != nil && h.PID == pb.pid()
	}); lost != "" {
		t.Errorf("the idle worker lost its lease (heartbeat_secs = 1, TTL 3 s) %s", lost)
	}
	e.stop(pb, a.ID)
	r = e.readRuns()
	e.assertRuns(r, tok, 2, 1)
	e.assertOnce(r, tok2)
	e.assertClean(a.ID)
}

// With a reattach window, a worker frozen mid-turn past its lease leaves a
// turn that need not be thrown away: the worker that takes the agent over
// on the same machine reattaches to the frozen worker's plugin and adopts
// the running turn, which completes exactly once, never run twice. When
// the frozen worker wakes it finds its lease taken and lets go of the
// plugin without stopping it or touching the reattach file.
func TestFrozenWorkersTurnIsAdoptedByTheWorkerThatTookOver(t *testing.T) {
	e := newEnv(t, settings{"heartbeat_secs": 1, "reattach_window_secs": 60}) // lease TTL 3 s
	a := e.agent("sleeper")
	tok := e.send(a.ID, "SLEEP_FIRST=8 while the worker is frozen")
	pa := e.freezePastLease(a, tok)

	pb := e.agentLoop(a, 100)
	r := e.waitEnded(90*time.Second, []*proc{pb}, tok)
	e.assertRuns(r, tok, 1, 1)
	if !strings.Contains(pb.out.String(), "adopted the turn the previous worker process left running") {
		t.Errorf("the new worker did not adopt the frozen worker's turn; output:\n%s", pb.out.String())
	}

	pa.signal(t, syscall.SIGCONT)
	code, ok := pa.waitExit(30 * time.Second)
	switch {
	case !ok:
		t.Errorf("the fenced worker did not exit within 30s of SIGCONT (killed now); output:\n%s", pa.out.String())
		_ = syscall.Kill(-pa.pid(), syscall.SIGKILL)
		pa.wait(t, long)
	case code == 0 || !strings.Contains(strings.ToLower(pa.out.String()), "lease"):
		t.Errorf("the fenced worker exited %s, want a non-zero exit naming the lease; output:\n%s", pa.how(), pa.out.String())
	}
	if pb.exited() {
		t.Fatalf("the new worker exited (%s); output:\n%s", pb.how(), pb.out.String())
	}
	// The plugin the woken worker let go of is the new worker's: it serves on.
	tok2 := e.send(a.ID, "after the takeover")
	e.waitEnded(long, []*proc{pb}, tok2)
	e.stop(pb, a.ID)
	r = e.readRuns()
	e.assertOnce(r, tok, tok2)
	e.assertClean(a.ID)
}

// freezePastLease starts a worker for the agent, waits until its turn for
// tok runs, freezes it (SIGSTOP; SIGCONT at cleanup) and waits until its
// lease has expired, so another worker may take the agent over.
func (e *env) freezePastLease(a *town.Agent, tok string) *proc {
	e.t.Helper()
	pa := e.agentLoop(a, 100)
	e.waitStarted(long, tok, 1, pa)
	pa.signal(e.t, syscall.SIGSTOP)
	e.t.Cleanup(func() { _ = syscall.Kill(pa.pid(), syscall.SIGCONT) })
	lease := e.store.Keys().Lease(a.ID)
	e.waitFor(15*time.Second, "the frozen worker's lease to expire", func() bool {
		n, err := e.rdb.Exists(e.ctx(), lease).Result()
		return err == nil && n == 0
	})
	return pa
}
