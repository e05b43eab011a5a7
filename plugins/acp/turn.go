package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/jsonrpc"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// turn is a tthost turn the agent runs for us: one session/prompt, or
// several when urgent input is emulated (a queued follow-up prompt, or a
// cancelled prompt prompted again with the input merged). Its fields are
// only used under session.mu.
type turn struct {
	pt       *plugin.Turn
	a        *agentProc // the generation running it
	text     string     // the turn's own text
	steered  []string   // urgent texts taken into the turn
	queue    []string   // queue mode: urgent texts to prompt after the running prompt
	restart  bool       // restart mode: the running prompt was cancelled to be prompted again
	cancel   bool       // an interrupt: the turn ends interrupted
	stalled  bool       // silent past the stall bound: cancelled, and failing turn_stalled
	ended    bool       // its end was reported (Complete)
	activity time.Time  // the agent's last line while the turn ran
	done     chan struct{}

	usage sdk.Usage // summed over the turn's prompts

	msg      strings.Builder // the agent message being written
	lastMsg  string          // the last complete agent message
	thought  strings.Builder
	tools    map[string]*toolState
	requests map[string]context.CancelFunc // permission requests waiting for a decision
}

type toolState struct {
	title, kind, emitted string
}

// startTurn is the Driver's StartTurn: session/prompt with the text. It
// returns once the prompt is written; the answer comes on the reader.
func (s *session) startTurn(ctx context.Context, pt *plugin.Turn, text string) error {
	if err := s.awaitRestart(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	a := s.agent
	t := &turn{pt: pt, a: a, text: text, activity: time.Now(), done: make(chan struct{}),
		tools: map[string]*toolState{}, requests: map[string]context.CancelFunc{}}
	s.running = t
	s.mu.Unlock()
	if err := s.prompt(t, text); err != nil {
		s.mu.Lock()
		if s.running == t {
			s.running = nil
		}
		t.ended = true
		close(t.done)
		s.mu.Unlock()
		return fmt.Errorf("the ACP agent did not take the prompt: %w", err)
	}
	go s.watch(t)
	return nil
}

// awaitRestart waits for a restart after a stall to finish.
func (s *session) awaitRestart(ctx context.Context) error {
	s.mu.Lock()
	r := s.restarting
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	select {
	case <-r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the ACP agent is being restarted after a stalled turn: %w", ctx.Err())
	}
}

// prompt sends one session/prompt of t; its answer is handled on the
// reader goroutine, in wire order, after every update the agent sent
// before it.
func (s *session) prompt(t *turn, text string) error {
	s.mu.Lock()
	id, a := s.sessionID, t.a
	s.mu.Unlock()
	params := map[string]any{"sessionId": id, "prompt": []map[string]any{{"type": "text", "text": text}}}
	_, err := a.rpc.Go("session/prompt", params, func(raw json.RawMessage, err error) {
		s.answered(t, raw, err)
	})
	return err
}

// answered handles the answer to one of t's prompts: the turn ends, or
// goes on with a follow-up prompt (queued or restarted urgent input).
func (s *session) answered(t *turn, raw json.RawMessage, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ended || s.running != t {
		return
	}
	if errors.Is(err, jsonrpc.ErrGone) {
		// The agent is gone: Lost fails the turn (or a stall restart did).
		return
	}
	var res promptResult
	if err == nil {
		res, err = decodePromptResult(raw)
		if err != nil {
			s.Emit(sdk.ErrorEvent("", "invalid_output", fmt.Sprintf("the ACP agent answered session/prompt with %.200q: %v", raw, err), false))
		}
	}
	if res.usage != nil {
		t.usage.InputTokens += res.usage.InputTokens
		t.usage.CachedInputTokens += res.usage.CachedInputTokens
		t.usage.OutputTokens += res.usage.OutputTokens
		t.usage.ReasoningOutputTokens += res.usage.ReasoningOutputTokens
		t.usage.TotalTokens += res.usage.TotalTokens
		t.pt.Emit(sdk.UsageEvent("", t.usage)) // the turn's total so far
	}
	s.flushThoughtLocked(t)
	switch {
	case t.stalled:
		s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: s.stallMessage("it answered the cancel")}, "turn_stalled")
	case t.cancel:
		s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled"}, "")
	case err != nil:
		s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "the ACP agent failed the prompt: " + err.Error()}, "")
	case t.restart:
		// Restart mode: the prompt was cancelled for urgent input. If it
		// ended first on its own, only the urgent input is left to answer.
		t.restart = false
		next := strings.Join(t.steered, "\n\n")
		if res.stopReason == "cancelled" {
			next = t.text + "\n\n" + next
		}
		t.pt.Transcript().Note("prompt ended %s; prompted again with the urgent input merged", res.stopReason)
		s.followUpLocked(t, next)
	case len(t.queue) > 0 && res.stopReason != "refusal":
		next := strings.Join(t.queue, "\n\n")
		t.queue = nil
		t.pt.Transcript().Note("prompt ended %s; prompting the queued urgent input", res.stopReason)
		s.followUpLocked(t, next)
	default:
		if res.stopReason == "max_tokens" || res.stopReason == "max_turn_requests" {
			t.pt.Transcript().Note("the agent stopped short: stopReason %s", res.stopReason)
		}
		s.endLocked(t, stopOutcome(res.stopReason), "")
	}
}

// followUpLocked sends the turn's next prompt, from a goroutine of its
// own: answered runs on the reader, which must not write.
func (s *session) followUpLocked(t *turn, text string) {
	if t.msg.Len() > 0 {
		t.lastMsg = t.msg.String()
		t.msg.Reset()
	}
	t.pt.Transcript().EndLine()
	t.activity = time.Now()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.prompt(t, text); err != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "the ACP agent did not take the follow-up prompt: " + err.Error()}, "")
		}
	}()
}

// stopOutcome maps a stopReason to the turn's outcome.
func stopOutcome(reason string) sdk.TurnCompleted {
	switch reason {
	case "end_turn":
		return sdk.TurnCompleted{Status: sdk.StatusCompleted}
	case "max_tokens", "max_turn_requests":
		// The agent stopped short, but the turn is done: the work so far
		// stands, and the note says why it stopped.
		return sdk.TurnCompleted{Status: sdk.StatusCompleted}
	case "cancelled":
		return sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled by the agent"}
	case "refusal":
		return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "the agent refused the prompt (stopReason refusal)"}
	}
	return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: fmt.Sprintf("the ACP agent ended the prompt with an unknown stopReason %q", reason)}
}

// endLocked reports t's end, once. code, when set, is an Error event
// emitted first (turn_stalled).
func (s *session) endLocked(t *turn, c sdk.TurnCompleted, code string) {
	if t.ended {
		return
	}
	t.ended = true
	close(t.done)
	if s.running == t {
		s.running = nil
	}
	s.cancelRequestsLocked(t)
	msg := t.msg.String()
	if strings.TrimSpace(msg) == "" {
		msg = t.lastMsg
	}
	if c.Summary == "" {
		c.Summary = firstLine(msg)
	}
	if code != "" {
		t.pt.Emit(sdk.ErrorEvent("", code, c.Error, false))
	}
	switch {
	case c.Error != "":
		t.pt.Transcript().Note("turn %s: %s", c.Status, c.Error)
	default:
		t.pt.Transcript().Note("turn %s", c.Status)
	}
	t.pt.Complete(c)
}

// turnOf returns the record of the Session's turn pt while the agent runs
// it, or nil.
func (s *session) turnOfLocked(pt *plugin.Turn) *turn {
	if t := s.running; t != nil && t.pt == pt && !t.ended {
		return t
	}
	return nil
}

// steer is the Driver's Steer. ACP v1 has no steer, so it is emulated
// (steer_mode): queue keeps the text for a prompt right after the running
// one; restart cancels the running prompt, and prompts again with the
// turn's text and the urgent text merged once it has ended. Either way the
// turn ends only after the text's answer, so DeliverySteered is honest.
func (s *session) steer(_ context.Context, pt *plugin.Turn, text string) error {
	s.mu.Lock()
	t := s.turnOfLocked(pt)
	switch {
	case t == nil:
		s.mu.Unlock()
		return plugin.ErrTurnEnded
	case t.stalled:
		s.mu.Unlock()
		return errors.New("the turn stalled and is being cancelled; the urgent input goes to the next turn")
	}
	t.steered = append(t.steered, text)
	if s.cfg.steerMode == steerQueue {
		t.queue = append(t.queue, text)
		t.pt.Emit(sdk.ErrorEvent("", "steer_queued", "ACP has no mid-turn steer: the urgent input is prompted right after the agent's running prompt ends, within this turn", false))
		s.mu.Unlock()
		return nil
	}
	first := !t.restart
	t.restart = true
	a := t.a
	id := s.sessionID
	if first {
		s.cancelRequestsLocked(t)
		t.pt.Emit(sdk.ErrorEvent("", "steer_restarted", "ACP has no mid-turn steer: the running prompt is cancelled and prompted again with the urgent input merged, within this turn", false))
	}
	s.mu.Unlock()
	if first {
		if err := a.rpc.Notify("session/cancel", map[string]any{"sessionId": id}); err != nil {
			s.mu.Lock()
			t.restart = false
			t.steered = t.steered[:len(t.steered)-1]
			s.mu.Unlock()
			return fmt.Errorf("session/cancel: %w", err)
		}
	}
	return nil
}

// cancel is the Driver's Cancel: session/cancel, pending permission
// requests answered cancelled; the prompt's answer ends the turn.
func (s *session) cancel(_ context.Context, pt *plugin.Turn) error {
	s.mu.Lock()
	t := s.turnOfLocked(pt)
	if t == nil {
		s.mu.Unlock()
		return plugin.ErrTurnEnded
	}
	t.cancel, t.queue, t.restart = true, nil, false
	s.cancelRequestsLocked(t)
	a, id := t.a, s.sessionID
	s.mu.Unlock()
	if err := a.rpc.Notify("session/cancel", map[string]any{"sessionId": id}); err != nil {
		return fmt.Errorf("session/cancel: %w", err)
	}
	return nil
}

// cancelRequestsLocked answers t's pending permission requests cancelled,
// as ACP requires of a client that cancels a prompt.
func (s *session) cancelRequestsLocked(t *turn) {
	for id, cancel := range t.requests {
		cancel()
		delete(t.requests, id)
	}
}

// watch is t's stall watchdog: a turn during which the agent says
// nothing for stall_timeout_ms is cancelled; if the agent does not answer
// the cancel either, it is killed and restarted. The turn fails with
// turn_stalled.
func (s *session) watch(t *turn) {
	bound := s.cfg.stallTimeout
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-s.Context().Done():
			return
		case <-timer.C:
		}
		s.mu.Lock()
		idle := time.Since(t.activity)
		waiting := len(t.requests) > 0 // our decision, not the agent's silence
		s.mu.Unlock()
		if idle < bound || waiting {
			timer.Reset(max(bound-idle, bound/10))
			continue
		}
		s.stall(t)
		return
	}
}

func (s *session) stallMessage(how string) string {
	return fmt.Sprintf("the ACP agent said nothing for %v during the turn (stall_timeout_ms); the turn was cancelled and %s", s.cfg.stallTimeout, how)
}

// stall cancels a silent turn, and restarts the agent if the cancel is
// not answered in time.
func (s *session) stall(t *turn) {
	s.mu.Lock()
	if t.ended {
		s.mu.Unlock()
		return
	}
	t.stalled, t.queue, t.restart = true, nil, false
	s.cancelRequestsLocked(t)
	a, id := t.a, s.sessionID
	s.mu.Unlock()
	_ = a.rpc.Notify("session/cancel", map[string]any{"sessionId": id})
	grace := time.NewTimer(min(s.cfg.stallTimeout, cancelGraceMax))
	defer grace.Stop()
	select {
	case <-t.done:
		return // answered: the turn failed turn_stalled
	case <-s.Context().Done():
		return
	case <-grace.C:
	}
	s.restartAgent(a, t)
}

// restartAgent kills a (which did not answer the cancel of the stalled
// turn t), fails t, and starts a new agent process that loads the same ACP
// session (or starts a new one and says the context was lost). Turns wait
// for it; if the new agent does not start, the session is lost.
func (s *session) restartAgent(a *agentProc, t *turn) {
	s.mu.Lock()
	if s.closing || s.agent != a || t.ended {
		s.mu.Unlock()
		return
	}
	a.replaced = true
	done := make(chan struct{})
	ctx, stop := context.WithCancel(s.Context())
	s.restarting, s.restartStop = done, stop
	id := s.sessionID
	s.mu.Unlock()
	defer func() {
		stop()
		s.mu.Lock()
		s.restarting = nil
		s.mu.Unlock()
		close(done)
	}()
	// Gone before the turn's end is reported: nothing of it is left then.
	a.proc.Kill()
	<-a.done
	s.mu.Lock()
	s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: s.stallMessage("it did not answer the cancel either, so it was killed and restarted")}, "turn_stalled")
	s.mu.Unlock()
	na, err := s.spawn()
	if err != nil {
		s.Lost(fmt.Errorf("the ACP agent stalled and could not be restarted: %v", err))
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		na.proc.Kill()
		<-na.proc.Done()
		return
	}
	s.agent = na
	s.mu.Unlock()
	go s.read(na)
	ready, err := s.handshake(ctx, na, id)
	switch {
	case err != nil && ctx.Err() == nil:
		s.Lost(fmt.Errorf("the ACP agent stalled and its restart failed: %v", err))
	case err != nil:
	case ready.ContextLostReason != "":
		s.Emit(sdk.ErrorEvent("", "context_lost", "after the restart: "+ready.ContextLostReason+
			fmt.Sprintf("; the session continues as %s, which a later resume of the saved id will not find", ready.RuntimeSessionID), false))
	default:
		s.Emit(sdk.ErrorEvent("", "agent_restarted", "the ACP agent was restarted after a stalled turn and loaded session "+id, false))
	}
}
