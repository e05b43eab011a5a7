package faults

import (
	"syscall"
	"testing"
)

// The one-shot plugin dies (kill -9) while a turn's CLI is running. The
// CLI's whole process group must be gone before the message is delivered
// again (the token's lock would otherwise still be held: an overlap), and
// the message then completes exactly once.
func TestPluginKilledMidTurnEndsItsCLIBeforeTheMessageRunsAgain(t *testing.T) {
	e := newEnv(t, nil)
	a := e.agent("survivor")
	tok := e.send(a.ID, "SLEEP_FIRST=60 while the plugin dies")
	p := e.agentLoop(a, 100)
	e.waitStarted(long, tok, 1, p)

	plugin := e.plugin(p)
	if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := e.waitEnded(long, []*proc{p}, tok)
	e.assertRuns(r, tok, 2, 1)
	e.stop(p, a.ID)
	e.assertRuns(e.readRuns(), tok, 2, 1)
	e.assertClean(a.ID)
}
