package suite

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
)

const (
	ruleCancel      = `Send(CANCEL) ─▶ … ─▶ TurnCompleted(INTERRUPTED): the cancel ends the running turn; a cancel finds the running turn (delivery cancelled, its turn id) or answers no_turn (docs/protocol.md, proto SendResponse)`
	ruleSteer       = `Send(URGENT) during a turn, with "steer" declared, joins the running turn: delivery steered, the same turn id, and the text reaches the CLI within that turn (docs/protocol.md, "Sessions, turns and events")`
	ruleResume      = `SessionReady reports the CLI's runtime_session_id; a resume_id from it is resumed (resumed=true) or reported lost (context_lost_reason), and a fresh session starts instead (proto SessionReady)`
	ruleResumed     = `a session opened with the resume_id of a conversation, with "resume" declared, continues that conversation: the CLI has what it was told before (proto SessionConfig.resume_id, SessionReady.resumed)`
	rulePersistent  = `"persistent" means one live CLI process per session serves its consecutive turns (proto Capability PERSISTENT; docs/protocol.md, "Process model")`
	resumeUnseen    = "conformance-unknown-session"
	steerTextPrefix = "conformance steer "
)

// checkCancel cancels a long turn that is seen running and times how long
// it takes to end.
func checkCancel(r *run) {
	r.launch()
	s, _ := r.openReady()
	// A turn that ended on its own before the cancel would prove nothing.
	id, seen := r.startRunning(s, r.target.Prompts.Long, ruleCancel)
	took := r.cancelRunning(s, id)
	if seen.quiet {
		// Nothing showed the CLI at work, so a turn that ends by itself a
		// few seconds in would look cancelled. Cancel a second one later
		// in its life, past the first cancel's bound: a turn ending at a
		// time of its own cannot end right after both cancels.
		extra := r.opts.CancelBound + time.Second
		id2, _ := r.startRunning(s, r.target.Prompts.Long, ruleCancel)
		if c, ended := r.holdFor(s, id2, extra); ended {
			r.fatalf(ruleCancel, "%s: the long turn %q, which shows no output and starts no process, ended %s on its own %v after it started; "+
				"the first one ended %v after it was cancelled, at about that age: the cancel is not what ended it",
				s.name, id2, c.Status, quietWait+longHold+extra, took.Round(time.Millisecond))
		}
		took2 := r.cancelRunning(s, id2)
		r.notef("the long turn showed no output and started no process, so two were cancelled, %v and %v after they started: "+
			"each ended right after its cancel (in %v and %v), which a turn ending by itself cannot do",
			quietWait+longHold, quietWait+longHold+extra, took.Round(time.Millisecond), took2.Round(time.Millisecond))
	}

	if d := r.send(s, sdk.Input{Kind: sdk.InputCancel}); d.Kind != sdk.DeliveryNoTurn {
		r.errorf(ruleCancel, "%s: Send(cancel) on an idle session answered %s (turn %q); want no_turn", s.name, d.Kind, d.TurnID)
	}
	text := "conformance after cancel " + r.nonce()
	id3, evs := r.runTurn(s, text)
	r.checkEcho(s, evs, id3, text)
	if !seen.quiet {
		r.notef("a cancelled turn, seen running (%s), ended in %v (bound %v)", seen.how, took.Round(time.Millisecond), r.opts.CancelBound)
	}
}

// cancelRunning cancels the running turn id, requires it to end as
// interrupted within the cancel bound and the session to await input, and
// returns how long the end took.
func (r *run) cancelRunning(s *stream, id string) time.Duration {
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
	return took
}

// checkSteer steers urgent input into a turn proven running and looks for
// the steered text in that turn's output.
func checkSteer(r *run) {
	r.launch()
	s, _ := r.openReady()
	id, seen := r.startRunning(s, r.target.Prompts.Steer, ruleSteer)
	text := steerTextPrefix + r.nonce()
	d := r.send(s, sdk.Input{Kind: sdk.InputUrgent, Text: text})
	if d.Kind != sdk.DeliverySteered || d.TurnID != id {
		r.errorf(ruleSteer, "%s: Send(urgent) during turn %q answered delivery %s for turn %q; want steered into %q", s.name, id, d.Kind, d.TurnID, id)
	}
	shown := ""
	if r.target.Prompts.SteerEcho != EchoNone && d.Kind == sdk.DeliverySteered {
		shown = r.awaitSteered(s, id, text)
	}
	evs := s.snapshot()
	if find(evs, sdk.EventTurnCompleted, id) < 0 {
		r.endLong(s, id)
	}
	evs = s.snapshot()
	checkTurnEvents(r, s, evs, id)
	for _, e := range evs {
		if e.Kind == sdk.EventTurnStarted && e.TurnID != id {
			r.errorf(ruleSteer, "%s: steering started another turn (%s)", s.name, describeEvent(e))
		}
	}
	switch {
	case d.Kind != sdk.DeliverySteered:
	case r.target.Prompts.SteerEcho == EchoNone:
		r.unprovenf("%s: the urgent input was answered steered into the running turn %q, but whether its text reached the CLI is not proven: "+
			"steer echo is none, so the turn's output was not searched for it. A CLI that shows steered text (steer echo full, --steer-echo) lets the check prove it",
			s.name, id)
	case shown == "":
		r.errorf(ruleSteer, "%s: the text steered into turn %q (%q) shows neither in the turn's output nor in its transcript nor in its summary within %v: "+
			"the plugin answered steered, but the CLI never got the text. The turn's last events:\n%s",
			s.name, id, text, r.opts.SteerBound, dumpEvents(ofTurn(evs, id), 12))
	default:
		r.notef("the text steered into a turn seen running (%s) showed in its %s", seen.how, shown)
	}
}

// awaitSteered waits, up to the steer bound, until the steered text shows
// in the turn's output or the turn ends, and says where it showed ("" if
// nowhere): the output, or once the turn ended its transcript or summary.
func (r *run) awaitSteered(s *stream, turnID, text string) string {
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.SteerBound)
	defer cancel()
	evs, _ := s.wait(ctx, "the steered text", func(evs []sdk.Event) bool {
		return strings.Contains(sdk.TurnText(evs, turnID), text) || find(evs, sdk.EventTurnCompleted, turnID) >= 0
	})
	if strings.Contains(sdk.TurnText(evs, turnID), text) {
		return "output"
	}
	i := find(evs, sdk.EventTurnCompleted, turnID)
	if i < 0 {
		return ""
	}
	if c := evs[i].Completed; c != nil && strings.Contains(c.Summary, text) {
		return "summary"
	}
	if b, err := os.ReadFile(r.transcriptOf(s, turnID)); err == nil && strings.Contains(string(b), text) {
		return "transcript"
	}
	return ""
}

// checkPersistent runs two turns in a session and follows its processes:
// one must outlive the first turn and still serve the second, and the
// second must not start a CLI of its own under the plugin.
func checkPersistent(r *run) {
	r.launch()
	s, _ := r.openReady()
	r.runTurn(s, "conformance first turn "+r.nonce())
	first := r.alive()
	firstDesc := describeOrNone(first) // now: they may be gone by the message
	second, seen := r.startRunning(s, r.target.Prompts.Long, ruleLongPrompt)
	during := r.alive()
	defer r.endLong(s, second)

	kept := slices.DeleteFunc(slices.Clone(first), func(pid int) bool { return !slices.Contains(during, pid) })
	fresh := newPids(during, first)
	switch {
	case len(first) == 0 && len(during) == 0:
		r.unprovenf("%s: no process of the session ran, between its turns or during its second turn (seen running: %s): "+
			"there was no CLI process to see serve both turns", s.name, seen.how)
		return
	case len(kept) == 0:
		r.errorf(rulePersistent, "%s: no process of the session outlived its first turn to serve the second: after the first turn %s; while the second ran %s",
			s.name, firstDesc, describeOrNone(during))
	}
	var spawned []int
	for _, pid := range fresh {
		if r.startedByPlugin(pid) {
			spawned = append(spawned, pid)
		}
	}
	if len(spawned) > 0 {
		r.errorf(rulePersistent, "%s: the second turn started %s directly under the plugin, a CLI per turn; the session's lasting processes were %s",
			s.name, describePids(spawned), describeOrNone(kept))
	}
	if !r.failed() {
		r.notef("%s served both turns", describePids(kept))
	}
}

func describeOrNone(pids []int) string {
	if len(pids) == 0 {
		return "none"
	}
	return describePids(pids)
}

// checkResume tells the CLI a fresh word, reopens the session from its
// runtime id in a new plugin process (as after a host restart), asks for
// the word back, and tries an id that never existed.
func checkResume(r *run) {
	first := r.launch()
	a, ready := r.openReady()
	if ready.RuntimeSessionID == "" {
		r.fatalf(ruleResume, "%s: SessionReady of a fresh session has no runtime_session_id, although the plugin declares resume: the host has nothing to save", a.name)
	}
	if ready.Resumed || ready.ContextLostReason != "" {
		r.errorf(ruleResume, "%s: a session opened without resume_id reports resumed=%v, context_lost_reason %q; want neither", a.name, ready.Resumed, ready.ContextLostReason)
	}
	word := r.nonce()
	r.runTurn(a, "conformance remember "+word)
	r.close(a, sdk.CloseGraceful)
	r.waitExited(a)
	if err := r.stopPlugin(first); err != nil {
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
	case rb.ContextLostReason != "":
		r.errorf(ruleResumed, "%s: resuming %q, a session closed gracefully a moment ago in the same workdir, reports the context lost (%s): "+
			"a plugin that declares resume must be able to resume it", b.name, cfg.ResumeID, rb.ContextLostReason)
	case !rb.Resumed:
		r.errorf(ruleResume, "%s: resuming %q reports neither resumed nor a context_lost_reason: the host cannot tell whether the conversation continues", b.name, cfg.ResumeID)
	}
	switch recall := r.target.Prompts.Recall; {
	case !rb.Resumed:
		r.runTurn(b, "conformance resumed "+r.nonce())
	case recall == "":
		r.runTurn(b, "conformance resumed "+r.nonce())
		r.unprovenf("%s: the session was resumed, but whether its CLI has the conversation back is not proven: no recall prompt "+
			"(Prompts.Recall, --recall-prompt) makes the CLI repeat what it was told before the restart", b.name)
	default:
		id, evs := r.runTurn(b, recall)
		out := sdk.TurnText(evs, id)
		transcript, _ := os.ReadFile(r.transcriptOf(b, id))
		if !strings.Contains(out, word) && !strings.Contains(string(transcript), word) {
			r.errorf(ruleResumed, "%s: resumed (resumed=true), the CLI does not recall the word %q it was told before the restart: "+
				"the recall prompt %q answered %s", b.name, word, clip(recall, 60), describeOutput(out))
		} else if r.inProcess() {
			r.unprovenf("%s: resumed, and the CLI recalled the word told before the \"restart\"; but in process the restart "+
				"served the same Backend value again, so a context kept in its memory would pass too: run the suite against the binary to prove a resume after a restart", b.name)
		}
	}

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

// describeOutput quotes a turn's output for a message.
func describeOutput(out string) string {
	if out == "" {
		return "with no output"
	}
	return fmt.Sprintf("%q", clip(out, 120))
}
