package cli

import (
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

// controlState is what stop, interrupt and resume change.
type controlState struct {
	state    town.AgentState
	stop     bool
	activity string // newest line
	wake     bool   // a wake token waits for the worker
	event    *town.TownEvent
}

func (tt *testTown) controlState(id string) controlState {
	tt.t.Helper()
	ctx := tt.ctx()
	s := controlState{state: tt.getAgent(id).State}
	var err error
	if s.stop, err = tt.store.StopRequested(ctx, id); err != nil {
		tt.t.Fatal(err)
	}
	if act, err := tt.store.Activity(ctx, id, 1); err != nil {
		tt.t.Fatal(err)
	} else if len(act) > 0 {
		s.activity = act[0]
	}
	s.wake = len(tt.list(tt.store.Keys().Wake(id))) > 0
	if evs := tt.events(tt.store.Keys().EventsAgent(id)); len(evs) > 0 {
		s.event = evs[len(evs)-1]
	}
	return s
}

func TestInterruptResumeStopChangeStateFlagActivityAndEvents(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	tt.setState(w.ID, town.StateWorking)
	ctx := tt.ctx()

	steps := []struct {
		name     string
		args     []string
		setup    func()
		out      string
		state    town.AgentState
		stop     bool
		activity string
		event    town.EventType
		old, new string
	}{
		{name: "interrupt pauses a working agent", args: []string{"interrupt", "worker"}, out: "Paused",
			state: town.StatePaused, activity: "⏸️ Interrupted (paused)",
			event: town.EventAgentInterrupted, old: "Working", new: "Paused"},
		{name: "resume makes it idle and clears the stop flag", args: []string{"resume", "worker"}, out: "Resumed",
			setup: func() {
				if err := tt.store.RequestStop(ctx, w.ID); err != nil {
					t.Fatal(err)
				}
			},
			state: town.StateIdle, activity: "▶️ Resumed",
			event: town.EventAgentResumed, old: "Paused", new: "Idle"},
		{name: "stop sets the flag and the state", args: []string{"stop", "worker"}, out: "Stopped",
			state: town.StateStopped, stop: true, activity: "🛑 Stop requested",
			event: town.EventAgentStopped, old: "Idle", new: "Stopped"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setup != nil {
				s.setup()
			}
			// The worker has taken its earlier wake tokens.
			if err := tt.redis.Client.Del(ctx, tt.store.Keys().Wake(w.ID)).Err(); err != nil {
				t.Fatal(err)
			}
			mustContain(t, tt.run(s.args...).ok(t), s.out, "worker")
			got := tt.controlState(w.ID)
			if got.state != s.state || got.stop != s.stop || got.activity != s.activity || !got.wake {
				t.Errorf("state %s stop %v activity %q wake %v; want %s %v %q and a wake token",
					got.state, got.stop, got.activity, got.wake, s.state, s.stop, s.activity)
			}
			if e := got.event; e == nil || e.Type != s.event || e.OldState != s.old || e.NewState != s.new || e.AgentID != w.ID {
				t.Errorf("last event %+v, want %s %s→%s", e, s.event, s.old, s.new)
			}
		})
	}

	// A stopped agent can be neither interrupted nor resumed.
	tt.run("interrupt", "worker").fails(t, "is stopped", "no worker to interrupt")
	tt.run("resume", "worker").fails(t, "is stopped, not paused")
	if got := tt.controlState(w.ID); got.state != town.StateStopped {
		t.Errorf("state %s, want stopped", got.state)
	}
}

func TestInterruptTwiceAndResumeUnpausedAreHandled(t *testing.T) {
	tt := newTestTown(t)
	w := tt.agent("worker")
	tt.setState(w.ID, town.StateIdle)
	tt.run("resume", "worker").fails(t, "is idle, not paused", "tthost interrupt")
	tt.run("interrupt", "worker").ok(t)
	mustContain(t, tt.run("interrupt", "worker").ok(t), "already paused")
	if n := len(tt.events(tt.store.Keys().EventsAgent(w.ID))); n != 1 {
		t.Errorf("%d events, want 1 (a second interrupt changes nothing)", n)
	}
}

func TestStopWithoutAgentsStopsEveryRunningAgent(t *testing.T) {
	tt := newTestTown(t)
	a := tt.agent("alpha")
	b := tt.agent("beta")
	c := tt.agent("gamma")
	tt.setState(b.ID, town.StateWorking)
	tt.setState(c.ID, town.StateStopped)

	out := tt.run("stop").ok(t)
	mustContain(t, out, "alpha", "was starting", "beta", "was working")
	if strings.Contains(out, "gamma") {
		t.Errorf("stop touched an agent that was already stopped:\n%s", out)
	}
	for _, id := range []string{a.ID, b.ID} {
		if s := tt.controlState(id); s.state != town.StateStopped || !s.stop {
			t.Errorf("agent %s: state %s stop %v", id, s.state, s.stop)
		}
	}
	if s := tt.controlState(c.ID); s.stop || s.event != nil {
		t.Errorf("the stopped agent got a stop flag or event: %+v", s)
	}
	mustContain(t, tt.run("stop").ok(t), "No running agents")

	// kill is tt's name for stopping one agent, even a stopped one.
	mustContain(t, tt.run("kill", "gamma").ok(t), "already stopped")
	if s := tt.controlState(c.ID); !s.stop {
		t.Error("kill did not set the stop flag")
	}
	tt.run("kill").fails(t, "needs AGENT")
	tt.run("stop", "supervisor").fails(t, "supervisor", "mailbox")
}
