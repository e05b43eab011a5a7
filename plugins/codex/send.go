package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
)

// turn is a turn codex runs for us. Its fields are only used under the
// session's lock.
type turn struct {
	id            string // set when codex answers turn/start
	transcript    *transcript
	transcriptErr error               // why there is no transcript, reported once the turn has an id
	lastText      string              // the last agentMessage: the summary
	baseline      tokenBreakdown      // the thread's usage when the turn started
	files         map[string][]string // fileChange item id -> paths, from item/started
	done          chan struct{}       // closed after TurnCompleted
	// active is closed when codex's turn/started notification arrives.
	// Codex answers turn/start before the turn can be steered or
	// interrupted: until then both get "no active turn".
	active     chan struct{}
	activeSeen bool
	retried    bool // a steer or interrupt was retried once it was active
}

// markActiveLocked records codex's turn/started for t.
func (t *turn) markActiveLocked() {
	if !t.activeSeen {
		t.activeSeen = true
		close(t.active)
	}
}

// Send implements sdk.Session. It waits (bounded by ctx) for the app-server
// to be ready, and takes one input at a time so that two turns can never
// both be started.
func (s *session) Send(ctx context.Context, in sdk.Input) (sdk.Delivery, error) {
	switch in.Kind {
	case sdk.InputTurn, sdk.InputUrgent, sdk.InputCancel:
	default:
		return sdk.Delivery{}, fmt.Errorf("%w: input kind %v", sdk.ErrUnsupported, in.Kind)
	}
	if err := s.usable(); err != nil {
		return sdk.Delivery{}, err
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return sdk.Delivery{}, fmt.Errorf("waiting for codex to start: %w", ctx.Err())
	}
	if s.startErr != nil {
		if err := s.usable(); err != nil {
			return sdk.Delivery{}, err
		}
		return sdk.Delivery{}, fmt.Errorf("codex did not start: %w", s.startErr)
	}
	select {
	case s.sendSlot <- struct{}{}:
	case <-ctx.Done():
		return sdk.Delivery{}, fmt.Errorf("waiting for the previous input: %w", ctx.Err())
	case <-s.done:
		return sdk.Delivery{}, s.usable()
	}
	defer func() { <-s.sendSlot }()
	if err := s.usable(); err != nil {
		return sdk.Delivery{}, err
	}

	t := s.runningTurn()
	switch {
	case in.Kind == sdk.InputCancel && t == nil:
		return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
	case in.Kind == sdk.InputCancel:
		return s.interrupt(ctx, t)
	case t == nil:
		return s.startTurn(ctx, in)
	case in.Kind == sdk.InputUrgent:
		return s.steer(ctx, t, in)
	}
	// Codex's own turn/start on a busy thread would steer the running
	// turn; a turn is a turn, so it is refused instead.
	return sdk.Delivery{}, fmt.Errorf("%w: turn %s has not finished", sdk.ErrTurnRunning, t.id)
}

// startTurn sends turn/start. The turn becomes the running one on the reader
// goroutine, the moment codex names it and before the turn's own
// notifications are read, so none of them can miss it. A failed turn/start
// leaves nothing behind: the session stays idle and usable
// (docs/compatibility.md#d4).
func (s *session) startTurn(ctx context.Context, in sdk.Input) (sdk.Delivery, error) {
	tr, trErr := openTranscript(in.TranscriptPath)
	t := &turn{transcript: tr, transcriptErr: trErr, files: map[string][]string{}, done: make(chan struct{}), active: make(chan struct{})}
	params := map[string]any{
		"threadId":       s.threadID,
		"input":          userInput(in.Text),
		"cwd":            s.cfg.workdir,
		"approvalPolicy": s.cfg.approvalPolicy,
		"sandboxPolicy":  sandboxPolicy(s.cfg.sandbox),
	}
	if s.cfg.model != "" {
		params["model"] = s.cfg.model
	}
	if s.cfg.effort != "" {
		params["effort"] = s.cfg.effort
	}
	s.mu.Lock()
	s.starting = t
	s.mu.Unlock()
	_, err := s.rpc.call(ctx, "turn/start", params, func(raw json.RawMessage) {
		var res struct {
			Turn struct {
				ID string `json:"id"`
			} `json:"turn"`
		}
		if json.Unmarshal(raw, &res) == nil && res.Turn.ID != "" {
			s.mu.Lock()
			s.bindLocked(t, res.Turn.ID)
			s.mu.Unlock()
		}
	})
	s.mu.Lock()
	s.starting = nil
	id := t.id
	s.mu.Unlock()
	if id != "" {
		// Running, whatever else happened: an answer that came just as
		// the request timed out still started the turn.
		return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: id}, nil
	}
	_ = tr.close()
	if err == nil {
		err = errors.New("turn/start: answered without a turn id")
	}
	return sdk.Delivery{}, fmt.Errorf("codex %w", err)
}

// bindLocked makes t the running turn, named id. It runs on the reader
// goroutine, as soon as codex's answer to turn/start (or its turn/started,
// whichever comes first) is read, before any later line.
func (s *session) bindLocked(t *turn, id string) {
	if t.id != "" {
		return
	}
	t.id = id
	t.baseline = s.usage
	s.running = t
	// TurnStarted is ours to emit, here: before Send returns and before
	// any event of the turn. Codex's turn/started only confirms it.
	s.events.Emit(sdk.TurnStartedEvent(t.id))
	if t.transcriptErr != nil {
		s.events.Emit(sdk.ErrorEvent(t.id, "transcript_failed", t.transcriptErr.Error()+"; the turn runs without a transcript", false))
	}
}

// steer adds urgent input to the running turn. When codex says the turn is
// no longer active, the steer raced the turn's end: its turn/completed is
// on its way, and the input starts the next turn instead.
func (s *session) steer(ctx context.Context, t *turn, in sdk.Input) (sdk.Delivery, error) {
	params := map[string]any{"threadId": s.threadID, "input": userInput(in.Text), "expectedTurnId": t.id}
	_, err := s.rpc.call(ctx, "turn/steer", params, nil)
	if err == nil {
		s.mu.Lock()
		if s.running == t {
			t.transcript.note("urgent input was steered into this turn")
		}
		s.mu.Unlock()
		return sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: t.id}, nil
	}
	if noActiveTurn(err) {
		switch s.awaitActive(ctx, t) {
		case turnBecameActive:
			// The steer came before codex made the turn steerable.
			return s.steer(ctx, t, in)
		case turnEnded:
			return s.startTurn(ctx, in)
		}
	}
	return sdk.Delivery{}, fmt.Errorf("codex %w", err)
}

// turnWait is what awaitActive saw.
type turnWait int

const (
	turnWaitGaveUp turnWait = iota
	turnBecameActive
	turnEnded
)

// awaitActive is called when codex said t is not active. Either codex has
// not yet made it active (no turn/started yet: wait for it), or the turn
// just ended (its turn/completed is on its way). It waits, bounded by the
// request timeout, for whichever happens.
func (s *session) awaitActive(ctx context.Context, t *turn) turnWait {
	wait := time.NewTimer(s.cfg.requestTimeout)
	defer wait.Stop()
	select {
	case <-t.done:
		return turnEnded
	default:
	}
	select {
	case <-t.done:
		return turnEnded
	case <-t.active:
		select {
		case <-t.done:
			return turnEnded
		default:
		}
		s.mu.Lock()
		retry := s.running == t && !t.retried
		t.retried = true
		s.mu.Unlock()
		if retry {
			return turnBecameActive
		}
		// Active before, and still "no active turn": it is ending.
		select {
		case <-t.done:
			return turnEnded
		case <-ctx.Done():
		case <-wait.C:
		case <-s.life.Done():
		}
	case <-ctx.Done():
	case <-wait.C:
	case <-s.life.Done():
	}
	return turnWaitGaveUp
}

// interrupt asks codex to stop the turn; its TurnCompleted follows.
func (s *session) interrupt(ctx context.Context, t *turn) (sdk.Delivery, error) {
	_, err := s.rpc.call(ctx, "turn/interrupt", map[string]any{"threadId": s.threadID, "turnId": t.id}, nil)
	if err != nil && noActiveTurn(err) {
		switch s.awaitActive(ctx, t) {
		case turnBecameActive:
			// The cancel came before codex made the turn interruptible
			// (codex answers turn/start first): send it again, now.
			return s.interrupt(ctx, t)
		case turnEnded:
			// Codex finished the turn as the interrupt came.
			err = nil
		}
	}
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("codex %w", err)
	}
	return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: t.id}, nil
}

// noActiveTurn matches codex's "no active turn to steer/interrupt".
func noActiveTurn(err error) bool {
	var re *rpcError
	return errors.As(err, &re) && strings.Contains(re.Message, "no active turn")
}

// userInput is a text prompt as codex's UserInput list; text_elements is
// required and snake_case.
func userInput(text string) []map[string]any {
	return []map[string]any{{"type": "text", "text": text, "text_elements": []any{}}}
}
