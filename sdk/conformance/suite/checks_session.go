package suite

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tthost/tthost/sdk"
)

const (
	ruleCloseIdempotent = `closing an unknown or already closed session succeeds (proto CloseSession)`
	ruleClosedSend      = `Send to a session that is not open fails with NOT_FOUND (sdk.ErrSessionNotFound)`
	ruleCloseTurn       = `an immediate close cancels any running turn: its TurnCompleted reports INTERRUPTED, then Exited (docs/protocol.md, "Sessions, turns and events")`
	ruleOpenOrder       = `OpenSession ─▶ SessionReady ─▶ AwaitingInput (docs/protocol.md, "Sessions, turns and events")`
	ruleTurnOrder       = `Send(TURN) ─▶ TurnStarted ─▶ … ─▶ TurnCompleted ─▶ AwaitingInput (docs/protocol.md, "Sessions, turns and events")`
	ruleUrgentIdle      = `urgent input starts a new turn when none is running (proto Input.KIND_URGENT)`
	ruleTranscript      = `Input.transcript_path is where the plugin writes the turn's transcript, the CLI's output (proto Input)`
	ruleInvalid         = `OpenSession answers INVALID_ARGUMENT (sdk.ErrInvalidConfig) for a bad request: an unknown CLI name, a missing command`
	ruleUndeclared      = `Send answers UNIMPLEMENTED (sdk.ErrUnsupported) for an input kind the plugin did not declare`
	ruleFailed          = `a failed turn ends with TurnCompleted FAILED and says why in the stream (TurnCompleted.error or an Error event), never only in logs`
)

// checkOpenClose opens and closes sessions every way the host does.
func checkOpenClose(r *run) {
	r.launch()

	// Graceful close of an idle session, then everything a closed session
	// must still answer.
	a := r.open(r.sessionConfig())
	evs := r.wait(a, "SessionReady then AwaitingInput", func(evs []sdk.Event) bool {
		i := find(evs, sdk.EventSessionReady, "")
		return i >= 0 && find(evs[i:], sdk.EventAwaitingInput, "") >= 0
	})
	if evs[0].Kind != sdk.EventSessionReady {
		r.errorf(ruleOpenOrder, "%s: the first event is %s; want SessionReady", a.name, describeEvent(evs[0]))
	}
	r.close(a, sdk.CloseGraceful)
	r.waitExited(a)
	ctx, cancel := r.stepCtx()
	defer cancel()
	for _, mode := range []sdk.CloseMode{sdk.CloseGraceful, sdk.CloseImmediate} {
		if err := a.sess.Close(ctx, mode); err != nil {
			r.errorf(ruleCloseIdempotent, "%s: closing it again (%s) failed: %v; want success", a.name, modeName(mode), err)
		}
	}
	if _, err := a.sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "conformance after close"}); !errors.Is(err, sdk.ErrSessionNotFound) {
		r.errorf(ruleClosedSend, "%s: Send(turn) after close returned %v; want sdk.ErrSessionNotFound", a.name, errText(err))
	}

	// Immediate close of an idle session.
	b, _ := r.openReady()
	r.close(b, sdk.CloseImmediate)
	r.waitExited(b)

	// Immediate close during a turn ends the turn as interrupted first.
	c, _ := r.openReady()
	id := r.startLong(c)
	took := r.close(c, sdk.CloseImmediate)
	evs = r.waitExited(c)
	if i := find(evs, sdk.EventTurnCompleted, id); i < 0 {
		r.errorf(ruleCloseTurn, "%s: the session exited without a TurnCompleted for the running turn %q", c.name, id)
	} else if st := evs[i].Completed.Status; st != sdk.StatusInterrupted {
		r.errorf(ruleCloseTurn, "%s: the turn running at the immediate close ended %s; want interrupted", c.name, st)
	}
	if took > r.opts.CancelBound {
		r.errorf(ruleCloseTurn, "%s: the immediate close of a session with a running turn took %v; want at most %v",
			c.name, took.Round(time.Millisecond), r.opts.CancelBound)
	}
}

// waitExited waits until the session's stream ends with Exited.
func (r *run) waitExited(s *stream) []sdk.Event {
	return r.wait(s, "Exited", func(evs []sdk.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == sdk.EventExited
	})
}

// checkTurnOrder runs turns and checks their events.
func checkTurnOrder(r *run) {
	r.launch()
	s, _ := r.openReady()
	r.wait(s, "AwaitingInput before the first turn", hasKind(sdk.EventAwaitingInput, ""))

	text := "conformance turn " + r.nonce()
	id, evs := r.runTurn(s, text)
	evs = r.wait(s, "AwaitingInput after the turn", awaitingAfter(id))
	checkTurnEvents(r, s, evs, id)
	r.checkEcho(s, evs, id, text)

	// Urgent input on an idle session starts a turn.
	text2 := "conformance urgent " + r.nonce()
	id2 := r.startTurn(s, sdk.InputUrgent, text2)
	if id2 == id {
		r.errorf(ruleTurnID, "%s: the second turn got the first turn's id %q", s.name, id)
	}
	if c, _ := r.finishTurn(s, id2); c.Status != sdk.StatusCompleted {
		r.errorf(ruleUrgentIdle, "%s: the turn started by urgent input ended %s (%q); want completed", s.name, c.Status, c.Error)
	}
	evs = r.wait(s, "AwaitingInput after the urgent turn", awaitingAfter(id2))
	checkTurnEvents(r, s, evs, id2)
	r.checkEcho(s, evs, id2, text2)

	// A turn while a turn runs is refused.
	long := r.startLong(s)
	ctx, cancel := r.stepCtx()
	defer cancel()
	d, err := s.sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "conformance second turn " + r.nonce(), TranscriptPath: r.transcript()})
	if !errors.Is(err, sdk.ErrTurnRunning) {
		r.errorf(ruleOneTurn, "%s: Send(turn) while turn %q runs returned delivery %s (turn %q), error %v; want sdk.ErrTurnRunning",
			s.name, long, d.Kind, d.TurnID, errText(err))
	}
	r.endLong(s, long)
	evs = s.snapshot()
	checkTurnEvents(r, s, evs, long)
}

// endLong ends a long turn: a cancel when the plugin declares interrupt,
// else an immediate close. It returns the turn's outcome.
func (r *run) endLong(s *stream, turnID string) *sdk.TurnCompleted {
	if r.cli.Has(sdk.CapInterrupt) {
		r.send(s, sdk.Input{Kind: sdk.InputCancel})
	} else {
		r.close(s, sdk.CloseImmediate)
	}
	c, _ := r.finishTurn(s, turnID)
	return c
}

// checkTurnEvents checks one turn's events in the session's history: its
// first event is TurnStarted, its last TurnCompleted, and nothing of
// another turn comes in between.
func checkTurnEvents(r *run, s *stream, evs []sdk.Event, turnID string) {
	start := find(evs, sdk.EventTurnStarted, turnID)
	end := find(evs, sdk.EventTurnCompleted, turnID)
	if start < 0 || end < 0 {
		r.errorf(ruleTurnOrder, "%s: turn %q lacks TurnStarted or TurnCompleted:\n%s", s.name, turnID, dumpEvents(evs, 12))
		return
	}
	for _, e := range evs[:start] {
		if e.TurnID == turnID {
			r.errorf(ruleTurnOrder, "%s: %s comes before the turn's TurnStarted", s.name, describeEvent(e))
		}
	}
	for _, e := range evs[start+1 : end] {
		if e.TurnID != turnID && e.TurnID != "" {
			r.errorf(ruleTurnID, "%s: %s, of another turn, comes while turn %q runs", s.name, describeEvent(e), turnID)
		}
	}
}

// checkIsolation runs turns in several sessions at once.
func checkIsolation(r *run) {
	r.launch()
	n := r.opts.Sessions
	type lane struct {
		s          *stream
		nonce      string
		text       string
		turnID     string
		transcript string
		evs        []sdk.Event
	}
	lanes := make([]*lane, n)
	for i := range lanes {
		nonce := r.nonce()
		lanes[i] = &lane{nonce: nonce, text: fmt.Sprintf("conformance isolation %d %s", i+1, nonce), transcript: r.transcript()}
	}

	// Open, run a turn and wait for its end in every session at once.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, l := range lanes {
		wg.Go(func() { errs[i] = r.isolatedTurn(&l.s, &l.turnID, &l.evs, l.text, l.transcript) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			r.errorf("", "%v", err)
		}
	}
	if r.failed() {
		return
	}

	ids := map[string]bool{}
	for i, l := range lanes {
		if ids[l.s.sess.ID()] {
			r.errorf(ruleOwnSession, "two sessions got the same id %q", l.s.sess.ID())
		}
		ids[l.s.sess.ID()] = true
		out := sdk.TurnText(l.evs, l.turnID)
		transcript, err := os.ReadFile(l.transcript)
		if err != nil {
			r.errorf(ruleTranscript, "%s: no transcript at the turn's transcript_path %s: %v", l.s.name, l.transcript, err)
		}
		if r.target.Prompts.Echo != EchoNone {
			r.checkEcho(l.s, l.evs, l.turnID, l.text)
			if err == nil && !strings.Contains(string(transcript), l.text) {
				r.errorf(ruleTranscript, "%s: the transcript %s does not contain the turn's prompt %q (echo mode %s); it holds %q",
					l.s.name, l.transcript, l.text, r.target.Prompts.Echo, clip(string(transcript), 120))
			}
		}
		for j, other := range lanes {
			if j == i {
				continue
			}
			if strings.Contains(out, other.nonce) {
				r.errorf(ruleOwnSession, "%s: its output contains %q, the prompt of %s", l.s.name, other.nonce, other.s.name)
			}
			if strings.Contains(string(transcript), other.nonce) {
				r.errorf(ruleOwnSession, "%s: its transcript contains %q, the prompt of %s", l.s.name, other.nonce, other.s.name)
			}
		}
	}

	// Close them all at once, half gracefully.
	ctx, cancel := r.stepCtx()
	defer cancel()
	for i, l := range lanes {
		mode := sdk.CloseImmediate
		if i%2 == 0 {
			mode = sdk.CloseGraceful
		}
		wg.Go(func() {
			if err := l.s.sess.Close(ctx, mode); err != nil {
				r.errorf("", "%s: CloseSession(%s) while other sessions close failed: %v", l.s.name, modeName(mode), err)
			}
		})
	}
	wg.Wait()
	for _, l := range lanes {
		r.waitExited(l.s)
	}
}

// isolatedTurn opens a session and runs one turn in it, from a goroutine
// of its own: it reports problems as an error instead of ending the check.
func (r *run) isolatedTurn(s **stream, turnID *string, evs *[]sdk.Event, text, transcript string) error {
	st, err := r.tryOpen(r.sessionConfig())
	if err != nil {
		return fmt.Errorf("OpenSession among concurrent opens failed: %w", err)
	}
	*s = st
	ctx, cancel := r.stepCtx()
	defer cancel()
	if _, err := st.wait(ctx, "SessionReady", hasKind(sdk.EventSessionReady, "")); err != nil {
		return fmt.Errorf("%s: %w", st.name, err)
	}
	d, err := st.sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: text, TranscriptPath: transcript})
	if err != nil {
		return fmt.Errorf("%s: Send(turn) failed: %w", st.name, err)
	}
	if d.Kind != sdk.DeliveryStarted || d.TurnID == "" {
		return fmt.Errorf("%s: Send(turn) answered %s with turn id %q; want started", st.name, d.Kind, d.TurnID)
	}
	*turnID = d.TurnID
	got, err := st.wait(ctx, "the turn's end", awaitingAfter(d.TurnID))
	if err != nil {
		return fmt.Errorf("%s: %w", st.name, err)
	}
	*evs = got
	if c := got[find(got, sdk.EventTurnCompleted, d.TurnID)].Completed; c.Status != sdk.StatusCompleted {
		return fmt.Errorf("%s: the turn ended %s (%q) while other sessions ran turns; want completed", st.name, c.Status, c.Error)
	}
	return nil
}

// failed reports whether the check has recorded a failure.
func (r *run) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs) > 0
}

// unicodeText is the non-ASCII text every large_and_unicode prompt carries:
// two-, three- and four-byte UTF-8.
const unicodeText = "héllo ✓ 日本 🚀"

// checkLargeUnicode sends non-ASCII and a 1 MiB prompt.
func checkLargeUnicode(r *run) {
	r.launch()
	s, _ := r.openReady()
	text := fmt.Sprintf("conformance unicode %s: %s", r.nonce(), unicodeText)
	id, evs := r.runTurn(s, text)
	r.checkEcho(s, evs, id, text)

	big := largePrompt("conformance large " + r.nonce() + ": " + unicodeText)
	id, evs = r.runTurn(s, big)
	r.checkEcho(s, evs, id, big)
}

// largePrompt is exactly 1 MiB of valid UTF-8: the first line, then
// numbered lines of mixed text, then ASCII padding.
func largePrompt(first string) string {
	const size = 1 << 20
	var b strings.Builder
	b.Grow(size)
	b.WriteString(first)
	b.WriteByte('\n')
	for i := 1; ; i++ {
		line := fmt.Sprintf("line %06d: %s – the quick brown fox jumps over the lazy dog\n", i, unicodeText)
		if b.Len()+len(line) > size {
			break
		}
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat(".", size-b.Len()))
	return b.String()
}

// checkErrorsInBand runs a failing turn and makes bad requests.
func checkErrorsInBand(r *run) {
	r.launch()
	s, _ := r.openReady()
	id := r.startTurn(s, sdk.InputTurn, r.target.Prompts.Fail)
	c, evs := r.finishTurn(s, id)
	turnEvs := evs[find(evs, sdk.EventTurnStarted, id):]
	var reasons []string
	fatal := false
	for _, e := range turnEvs {
		if e.Kind == sdk.EventError && (e.TurnID == id || e.TurnID == "") && e.Error != nil {
			reasons = append(reasons, e.Error.Message)
			fatal = fatal || e.Error.Fatal
		}
	}
	switch {
	case c.Status != sdk.StatusFailed:
		r.errorf(ruleFailed, "%s: the failing prompt %q ended %s; want failed. Is the prompt one the CLI fails? The turn's events:\n%s",
			s.name, clip(r.target.Prompts.Fail, 60), c.Status, dumpEvents(ofTurn(evs, id), 12))
	case strings.TrimSpace(c.Error) == "" && len(reasons) == 0:
		r.errorf(ruleFailed, "%s: the failed turn %q gives no reason: TurnCompleted.error is empty and no Error event came", s.name, id)
	}
	if fatal {
		r.notef("the failing turn ended the session (fatal Error): the host will open a new one")
		r.waitExited(s)
	} else {
		r.wait(s, "AwaitingInput after the failed turn", awaitingAfter(id))
		text := "conformance after failure " + r.nonce()
		id, evs := r.runTurn(s, text)
		r.checkEcho(s, evs, id, text)
	}

	// Bad requests get the documented codes.
	cfg := r.sessionConfig()
	cfg.Command = ""
	if _, err := r.tryOpen(cfg); !errors.Is(err, sdk.ErrInvalidConfig) {
		r.errorf(ruleInvalid, "OpenSession with an empty command returned %v; want sdk.ErrInvalidConfig", errText(err))
	}
	if !servesAny(r.desc) {
		cfg := r.sessionConfig()
		cfg.CLIName = "conformance-unserved-cli"
		if _, err := r.tryOpen(cfg); !errors.Is(err, sdk.ErrInvalidConfig) {
			r.errorf(ruleInvalid, "OpenSession for CLI %q, which the plugin does not declare, returned %v; want sdk.ErrInvalidConfig", cfg.CLIName, errText(err))
		}
	}
	if !r.cli.Has(sdk.CapInterrupt) {
		idle, _ := r.openReady()
		ctx, cancel := r.stepCtx()
		defer cancel()
		if d, err := idle.sess.Send(ctx, sdk.Input{Kind: sdk.InputCancel}); !errors.Is(err, sdk.ErrUnsupported) {
			r.errorf(ruleUndeclared, "Send(cancel) to a plugin that does not declare interrupt returned delivery %s, error %v; want sdk.ErrUnsupported",
				d.Kind, errText(err))
		}
	}
}

func servesAny(d sdk.Description) bool {
	_, ok := d.Lookup("conformance-unserved-cli")
	return ok
}

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return fmt.Sprintf("%q", err.Error())
}
