package faults

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
)

// Bad messages between good ones: JSON that does not parse, JSON without a
// required field, a message addressed to another agent of the town and
// one addressed to an agent that does not exist. The good ones each run
// exactly once, in order; the unreadable ones and the one for nobody go
// to the dead-letter list with an event; the one for another agent is
// re-routed to that agent's inbox (message_rerouted) and runs there.
func TestBadMessagesBetweenGoodOnesAreSetAsideAndTheGoodOnesRunOnce(t *testing.T) {
	e := newEnv(t, nil)
	a := e.agent("sorter")
	other := e.agent("neighbour")

	good := func() (string, string) {
		tok := e.token()
		return tok, mustRaw(t, task(a.ID, tok, "good"))
	}
	g1, g1raw := good()
	badJSON := e.token()
	badJSONRaw := `{"id":"` + badJSON + ` is not JSON`
	g2, g2raw := good()
	noField := e.token()
	var obj map[string]any
	if err := json.Unmarshal([]byte(mustRaw(t, task(a.ID, noField, "without created_at"))), &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj, "created_at")
	b, _ := json.Marshal(obj)
	noFieldRaw := string(b)
	g3, g3raw := good()
	forOther := e.token()
	forOtherMsg := task(other.ID, forOther, "for the neighbour")
	g4, g4raw := good()
	forNobody := e.token()
	forNobodyRaw := mustRaw(t, task(town.NewID(), forNobody, "for an agent that does not exist"))
	g5, g5raw := good()
	goods := []string{g1, g2, g3, g4, g5}

	e.pushRaw(e.store.Keys().Inbox(a.ID), g1raw, badJSONRaw, g2raw, noFieldRaw, g3raw,
		mustRaw(t, forOtherMsg), g4raw, forNobodyRaw, g5raw)
	p := e.agentLoop(a, 100)
	e.waitEnded(long, []*proc{p}, goods...)
	e.stop(p, a.ID)

	r := e.readRuns()
	e.assertOnce(r, goods...)
	var order []string
	for _, tok := range r.order {
		if slices.Contains(goods, tok) {
			order = append(order, tok)
		}
	}
	if !slices.Equal(order, goods) {
		t.Errorf("good messages ran in the order %q, want %q", order, goods)
	}
	for _, tok := range []string{badJSON, noField, forOther, forNobody} {
		if r.starts[tok] != 0 {
			t.Errorf("%s (a bad message) ran %d time(s) in %s's CLI, want 0", tok, r.starts[tok], a.Name)
		}
	}

	dead, err := e.store.DeadLetters(e.ctx(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var deadRaws []string
	for _, d := range dead {
		deadRaws = append(deadRaws, d.Raw)
	}
	if want := []string{badJSONRaw, noFieldRaw, forNobodyRaw}; !slices.Equal(deadRaws, want) {
		t.Errorf("dead letters:\n  %s\nwant, in order, the invalid JSON, the one without created_at and the one for nobody:\n  %s",
			strings.Join(deadRaws, "\n  "), strings.Join(want, "\n  "))
	}
	var deadEvents int
	for _, ev := range e.events(a.ID) {
		if strings.Contains(ev.Message, "dead-letter") || strings.Contains(kindOf(ev), "dead_letter") {
			deadEvents++
		}
	}
	if deadEvents != 3 {
		t.Errorf("%d dead-letter event(s), want 3; events:\n%s", deadEvents, e.dumpEvents(a.ID))
	}
	if evs := e.eventsOfKind(a.ID, "message_rerouted"); len(evs) != 1 {
		t.Errorf("%d message_rerouted event(s), want 1; events:\n%s", len(evs), e.dumpEvents(a.ID))
	}

	msgs, bad, err := e.store.PeekInbox(e.ctx(), other.ID, 10)
	if err != nil || bad != 0 || len(msgs) != 1 || msgs[0].ID != forOtherMsg.ID {
		t.Errorf("%s's inbox: %d message(s), %d bad (%v); want the message addressed to it (%s)", other.Name, len(msgs), bad, err, forOther)
	} else {
		po := e.agentLoop(other, 100)
		r := e.waitEnded(long, []*proc{po}, forOther)
		e.stop(po, other.ID)
		e.assertOnce(r, forOther)
	}
	e.assertClean(a.ID, other.ID)
}
