package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/jsonrpc"
	"github.com/tthost/tthost/sdk/plugin"
)

// turn is a turn codex runs for us: the Session's turn, where its events
// go, and what codex says about it. Its fields are only used under the
// session's lock.
type turn struct {
	pt       *plugin.Turn
	id       string              // codex's id, set when codex answers turn/start
	lastText string              // the last agentMessage: the summary
	baseline tokenBreakdown      // the thread's usage when the turn started
	files    map[string][]string // fileChange item id -> paths, from item/started
	// active is closed when codex's turn/started notification arrives.
	// Codex answers turn/start before the turn can be steered or
	// interrupted: until then both get "no active turn".
	active     chan struct{}
	activeSeen bool
	// ended is closed when codex's turn/completed arrives (the Session may
	// hold the turn's end back while a steer is on its way).
	ended   chan struct{}
	retried bool // a steer or interrupt was retried once it was active
}

// markActiveLocked records codex's turn/started for t.
func (t *turn) markActiveLocked() {
	if !t.activeSeen {
		t.activeSeen = true
		close(t.active)
	}
}

// startTurn sends turn/start. The turn becomes the running one on the
// reader goroutine, the moment codex names it and before the turn's own
// notifications are read, so none of them can miss it. A failed turn/start
// leaves nothing behind: the Session stays idle and usable
// (docs/compatibility.md#d4).
func (s *session) startTurn(ctx context.Context, pt *plugin.Turn, text string) error {
	t := &turn{pt: pt, files: map[string][]string{}, active: make(chan struct{}), ended: make(chan struct{})}
	params := map[string]any{
		"threadId":       s.threadID,
		"input":          userInput(text),
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
	_, err := s.rpc.Call(ctx, "turn/start", params, func(raw json.RawMessage) {
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
		return nil
	}
	if err == nil {
		err = errors.New("turn/start: answered without a turn id")
	}
	return fmt.Errorf("codex %w", err)
}

// bindLocked makes t the running turn, named id. It runs on the reader
// goroutine, as soon as codex's answer to turn/start (or its turn/started,
// whichever comes first) is read, before any later line. The host knows
// the turn by codex's id too, unless it was sent before codex was ready.
func (s *session) bindLocked(t *turn, id string) {
	if t.id != "" {
		return
	}
	t.id = id
	t.pt.Name(id)
	t.baseline = s.usage
	s.running = t
}

// turnOf returns codex's record of the Session's turn pt, or nil once
// codex has ended it.
func (s *session) turnOf(pt *plugin.Turn) *turn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.running; t != nil && t.pt == pt {
		return t
	}
	return nil
}

// steer adds urgent input to the running turn. When codex says the turn is
// no longer active, the steer raced the turn's end: its turn/completed is
// on its way, and the Session starts the next turn with the input.
func (s *session) steer(ctx context.Context, pt *plugin.Turn, text string) error {
	t := s.turnOf(pt)
	if t == nil {
		return plugin.ErrTurnEnded
	}
	params := map[string]any{"threadId": s.threadID, "input": userInput(text), "expectedTurnId": t.id}
	_, err := s.rpc.Call(ctx, "turn/steer", params, nil)
	if err == nil {
		return nil
	}
	if noActiveTurn(err) {
		switch s.awaitActive(ctx, t) {
		case turnBecameActive:
			// The steer came before codex made the turn steerable.
			return s.steer(ctx, pt, text)
		case turnEnded:
			return plugin.ErrTurnEnded
		}
	}
	return fmt.Errorf("codex %w", err)
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
	case <-t.ended:
		return turnEnded
	default:
	}
	select {
	case <-t.ended:
		return turnEnded
	case <-t.active:
		select {
		case <-t.ended:
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
		case <-t.ended:
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

// cancel asks codex to stop the turn; its turn/completed follows.
func (s *session) cancel(ctx context.Context, pt *plugin.Turn) error {
	if t := s.turnOf(pt); t != nil {
		return s.interrupt(ctx, t)
	}
	return nil // codex ended it already
}

func (s *session) interrupt(ctx context.Context, t *turn) error {
	_, err := s.rpc.Call(ctx, "turn/interrupt", map[string]any{"threadId": s.threadID, "turnId": t.id}, nil)
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
		return fmt.Errorf("codex %w", err)
	}
	return nil
}

// noActiveTurn matches codex's "no active turn to steer/interrupt".
func noActiveTurn(err error) bool {
	var re *jsonrpc.Error
	return errors.As(err, &re) && strings.Contains(re.Message, "no active turn")
}

// userInput is a text prompt as codex's UserInput list; text_elements is
// required and snake_case.
func userInput(text string) []map[string]any {
	return []map[string]any{{"type": "text", "text": text, "text_elements": []any{}}}
}
