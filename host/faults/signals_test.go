package faults

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
)

// A worker told to go away mid-turn (a closed terminal, a service manager,
// Ctrl-C) cancels the turn, puts its message back at the front of the
// inbox, leaves the agent stopped and exits 0, with nothing in flight and
// no process left; the next worker runs the message to its end once.
func TestSignalMidTurnRequeuesTheMessageAndExitsCleanly(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"SIGHUP from a closed terminal", syscall.SIGHUP},
		{"SIGTERM from a service manager", syscall.SIGTERM},
		{"SIGINT from Ctrl-C", syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			a := e.agent("signalled")
			tok := e.send(a.ID, "SLEEP_FIRST=60 until a signal comes")
			p := e.agentLoop(a, 100)
			e.waitStarted(long, tok, 1, p)

			p.signal(t, tc.sig)
			if code, ok := p.waitExit(30 * time.Second); !ok {
				t.Fatalf("the worker did not exit within 30s of %s", tc.sig)
			} else if code != 0 {
				t.Errorf("the worker ended with %s after %s, want exit 0", p.how(), tc.sig)
			}
			if s := e.state(a.ID); s != town.StateStopped {
				t.Errorf("agent state %s, want stopped", s)
			}
			if in := e.inboxTokens(a.ID); !slices.Equal(in, []string{tok}) {
				t.Errorf("inbox holds %q, want the interrupted message back exactly once: [%s]", in, tok)
			}
			e.assertNothingInFlight(a.ID)
			e.assertNoProcessLeft()
			e.assertRuns(e.readRuns(), tok, 1, 0)

			p2 := e.agentLoop(a, 100)
			r := e.waitEnded(long, []*proc{p2}, tok)
			e.assertRuns(r, tok, 2, 1)
			e.stop(p2, a.ID)
			e.assertRuns(e.readRuns(), tok, 2, 1)
			e.assertClean(a.ID)
		})
	}
}
