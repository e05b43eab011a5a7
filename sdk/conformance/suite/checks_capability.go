package suite

import (
	"context"
	"fmt"
	"time"

	"github.com/tthost/tthost/sdk"
)

const (
	ruleCancel   = `Send(CANCEL) ─▶ … ─▶ TurnCompleted(INTERRUPTED); a cancel finds the running turn (delivery cancelled, its turn id) or answers no_turn (docs/protocol.md, proto SendResponse)`
	ruleSteer    = `Send(URGENT) during a turn, with "steer" declared, joins the running turn: delivery steered, the same turn id (docs/protocol.md, "Sessions, turns and events")`
	ruleResume   = `SessionReady reports the CLI's runtime_session_id; a resume_id from it is resumed (resumed=true) or reported lost (context_lost_reason), and a fresh session starts instead (proto SessionReady)`
	resumeUnseen = "conformance-unknown-session"
)

// checkCancel cancels a long turn and times how long it takes to end.
func checkCancel(r *run) {
	r.launch()
	s, _ := r.openReady()
	id := r.startLong(s)
	start := time.Now()
	d := r.send(s, sdk.Input{Kind: sdk.InputCancel})
	if d.Kind != sdk.DeliveryCancelled || d.TurnID != id {
		r.errorf(ruleCancel, "%s: Send(cancel) during turn %q answered delivery %s for turn %q; want cancelled for %q", s.name, id, d.Kind, d.TurnID, id)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.CancelBound)
	evs, err := s.wait(ctx, "the cancelled turn's TurnCompleted", hasKind(sdk.EventTurnCompleted, id))
	cancel()
	took := time.Since(start)
	if err != nil {
		r.fatalf(ruleCancel, "%s: the cancelled turn %q did not end within the cancel bound %v: %v", s.name, id, r.opts.CancelBound, err)
	}
	if c := evs[find(evs, sdk.EventTurnCompleted, id)].Completed; c.Status != sdk.StatusInterrupted {
		r.errorf(ruleCancel, "%s: the cancelled turn ended %s (%q); want interrupted", s.name, c.Status, c.Error)
	}
	r.wait(s, "AwaitingInput after the cancelled turn", awaitingAfter(id))

	if d := r.send(s, sdk.Input{Kind: sdk.InputCancel}); d.Kind != sdk.DeliveryNoTurn {
		r.errorf(ruleCancel, "%s: Send(cancel) on an idle session answered %s (turn %q); want no_turn", s.name, d.Kind, d.TurnID)
	}
	text := "conformance after cancel " + r.nonce()
	id2, evs := r.runTurn(s, text)
	r.checkEcho(s, evs, id2, text)
	r.notef("a cancelled turn ended in %v (bound %v)", took.Round(time.Millisecond), r.opts.CancelBound)
}

// checkSteer steers urgent input into a long turn.
func checkSteer(r *run) {
	r.launch()
	s, _ := r.openReady()
	id := r.startLong(s)
	d := r.send(s, sdk.Input{Kind: sdk.InputUrgent, Text: "conformance steer " + r.nonce()})
	if d.Kind != sdk.DeliverySteered || d.TurnID != id {
		r.errorf(ruleSteer, "%s: Send(urgent) during turn %q answered delivery %s for turn %q; want steered into %q", s.name, id, d.Kind, d.TurnID, id)
	}
	r.endLong(s, id)
	evs := s.snapshot()
	checkTurnEvents(r, s, evs, id)
	for _, e := range evs {
		if e.Kind == sdk.EventTurnStarted && e.TurnID != id {
			r.errorf(ruleSteer, "%s: steering started another turn (%s)", s.name, describeEvent(e))
		}
	}
}

// checkResume reopens a session from its runtime id in a new plugin
// process (as after a host restart), and tries an id that never existed.
func checkResume(r *run) {
	first := r.launch()
	a, ready := r.openReady()
	if ready.RuntimeSessionID == "" {
		r.fatalf(ruleResume, "%s: SessionReady of a fresh session has no runtime_session_id, although the plugin declares resume: the host has nothing to save", a.name)
	}
	if ready.Resumed || ready.ContextLostReason != "" {
		r.errorf(ruleResume, "%s: a session opened without resume_id reports resumed=%v, context_lost_reason %q; want neither", a.name, ready.Resumed, ready.ContextLostReason)
	}
	r.runTurn(a, "conformance remember "+r.nonce())
	r.close(a, sdk.CloseGraceful)
	r.waitExited(a)
	if err := first.Stop(stopGrace); err != nil {
		r.errorf("", "stopping the first plugin process: %v", err)
	}

	// A new plugin process, as after a restart.
	r.launch()
	cfg := r.sessionConfig()
	cfg.ResumeID = ready.RuntimeSessionID
	b := r.open(cfg)
	rb := r.waitReady(b)
	switch {
	case rb.Resumed && rb.ContextLostReason != "":
		r.errorf(ruleResume, "%s: resuming %q reports both resumed and the context lost (%q)", b.name, cfg.ResumeID, rb.ContextLostReason)
	case rb.Resumed:
		r.notef("resuming the runtime session %q in a new plugin process: resumed", cfg.ResumeID)
	case rb.ContextLostReason != "":
		r.notef("resuming the runtime session %q in a new plugin process: context lost (%s)", cfg.ResumeID, rb.ContextLostReason)
	default:
		r.errorf(ruleResume, "%s: resuming %q reports neither resumed nor a context_lost_reason: the host cannot tell whether the conversation continues", b.name, cfg.ResumeID)
	}
	r.runTurn(b, "conformance resumed "+r.nonce())

	cfg = r.sessionConfig()
	cfg.ResumeID = fmt.Sprintf("%s-%s", resumeUnseen, r.nonce())
	c := r.open(cfg)
	rc := r.waitReady(c)
	switch {
	case rc.Resumed:
		r.errorf(ruleResume, "%s: resume_id %q, which never existed, reports resumed", c.name, cfg.ResumeID)
	case rc.ContextLostReason == "":
		r.errorf(ruleResume, "%s: resume_id %q, which never existed, gives no context_lost_reason", c.name, cfg.ResumeID)
	}
	r.runTurn(c, "conformance fresh after unknown resume id "+r.nonce())
}
