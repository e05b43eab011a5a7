package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// turn is a tthost turn as claude runs it: the lines given for it (its
// text, then each steered text) and how many claude has answered. Claude
// answers a line with a result: several lines at once when it folded a
// steered text into the CLI turn it was running, one each when it queued
// it as a CLI turn of its own. The turn ends when every line is answered,
// when an interrupt of ours ended it, or when it stalled. Its fields are
// used under the session's lock.
type turn struct {
	pt       *plugin.Turn
	given    int // lines given to claude for this turn
	answered int
	results  int // claude's results for this turn so far
	ended    bool
	done     chan struct{} // closed when the turn ended here

	cancelled bool // an interrupt of ours was sent
	stalled   bool // the hang guard gave up on it
	stall     *time.Timer
	usage     sdk.Usage
	cost      float64

	streamMsg string          // the message whose text is being streamed
	streamed  map[string]bool // messages whose text came as deltas
	tools     map[string]sdk.ToolCall
}

// startTurn gives the turn's text to claude as a user line.
func (s *session) startTurn(_ context.Context, pt *plugin.Turn, text string) error {
	t := &turn{pt: pt, given: 1, done: make(chan struct{}), streamed: map[string]bool{}, tools: map[string]sdk.ToolCall{}}
	id := uuid.NewString()
	s.mu.Lock()
	if s.proc == nil || s.stopping {
		s.mu.Unlock()
		return errors.New("claude is not running")
	}
	s.cur = t
	s.lines[id] = &lineRec{t: t}
	gen := s.gen
	t.stall = time.AfterFunc(s.cfg.stallTimeout, func() { s.stalled(t, gen) })
	s.mu.Unlock()
	if err := s.write(userLine(id, text)); err != nil {
		s.mu.Lock()
		t.stall.Stop()
		delete(s.lines, id)
		if s.cur == t {
			s.cur = nil
		}
		s.mu.Unlock()
		return fmt.Errorf("claude did not get the turn: %w", err)
	}
	return nil
}

// steer gives urgent input to the running turn: one more user line. Claude
// folds it into the CLI turn it runs at the next tool boundary, or runs it
// as a CLI turn of its own after the current one; the tthost turn stays
// open until it is answered either way (a steer_queued Error says when it
// was queued). A turn whose end is already settled gets ErrTurnEnded, and
// the Session starts the next turn with the input.
func (s *session) steer(_ context.Context, pt *plugin.Turn, text string) error {
	id := uuid.NewString()
	s.mu.Lock()
	t := s.cur
	if t == nil || t.pt != pt || t.ended {
		s.mu.Unlock()
		return plugin.ErrTurnEnded
	}
	if t.cancelled || t.stalled {
		s.mu.Unlock()
		return fmt.Errorf("%w: the turn is being interrupted; send the input again once it has ended", sdk.ErrTurnRunning)
	}
	t.given++
	s.lines[id] = &lineRec{t: t, steer: true}
	s.mu.Unlock()
	if err := s.write(userLine(id, text)); err != nil {
		s.mu.Lock()
		t.given--
		delete(s.lines, id)
		s.mu.Unlock()
		return fmt.Errorf("claude did not get the urgent input: %w", err)
	}
	return nil
}

// cancel interrupts the running turn; claude answers with a result that
// ends it (interrupted), and the process stays. After the turn's last
// result, there is nothing to cancel: ErrTurnEnded.
func (s *session) cancel(ctx context.Context, pt *plugin.Turn) error {
	s.mu.Lock()
	t := s.cur
	if t == nil || t.pt != pt || t.ended {
		s.mu.Unlock()
		return plugin.ErrTurnEnded
	}
	already := t.cancelled
	t.cancelled = true
	p, gen := s.proc, s.gen
	s.mu.Unlock()
	if already {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	if _, err := s.control(cctx, p, gen, "interrupt"); err != nil {
		return fmt.Errorf("claude %w", err)
	}
	// Claude drops a line it had queued on interrupt: if no result is left
	// to end the turn, it ends here.
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil // Stop ends the turn
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		settle := time.NewTimer(interruptSettle)
		defer settle.Stop()
		select {
		case <-t.done:
		case <-s.stopCtx.Done():
		case <-settle.C:
			s.mu.Lock()
			s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "interrupted"}, true)
			s.mu.Unlock()
		}
	}()
	return nil
}

// endLocked ends t here: with Complete (whatever it was given) or with one
// Answered per line left.
func (s *session) endLocked(t *turn, c sdk.TurnCompleted, complete bool) {
	if t.ended {
		return
	}
	t.ended = true
	t.stall.Stop()
	close(t.done)
	if s.cur == t {
		s.cur = nil
	}
	for id, l := range s.lines {
		if l.t == t {
			delete(s.lines, id)
		}
	}
	if c.Error != "" {
		t.pt.Transcript().Note("turn %s: %s", c.Status, c.Error)
	} else {
		t.pt.Transcript().Note("turn %s", c.Status)
	}
	if complete {
		t.pt.Complete(c)
		return
	}
	for ; t.answered < t.given; t.answered++ {
		t.pt.Answered(c)
	}
}

// activityLocked is a line from claude: the running turn is alive.
func (s *session) activityLocked() {
	if t := s.cur; t != nil && !t.ended && !t.stalled {
		t.stall.Reset(s.cfg.stallTimeout)
	}
}

// stalled is the hang guard: t printed nothing for the stall timeout. It
// interrupts the turn; when claude does not end it in time, claude is
// killed and started again on the same session (--resume). The turn ends
// failed with a turn_stalled Error either way, so that the host delivers
// its input again.
func (s *session) stalled(t *turn, gen int) {
	s.mu.Lock()
	if s.cur != t || t.ended || s.gen != gen || s.stopping {
		s.mu.Unlock()
		return
	}
	t.stalled = true
	p := s.proc
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.bg.Done()
	s.log.Warn("turn stalled", "timeout", s.cfg.stallTimeout)
	ctx, cancel := context.WithTimeout(s.stopCtx, controlTimeout)
	_, err := s.control(ctx, p, gen, "interrupt")
	cancel()
	if err == nil {
		settle := time.NewTimer(controlTimeout)
		select {
		case <-t.done: // claude answered with a result: the process stays
			settle.Stop()
			return
		case <-settle.C:
		case <-s.stopCtx.Done():
		}
	}
	msg := s.stallMsg() + " and did not answer the interrupt, so it was restarted"
	if rerr := s.restart(gen); rerr != nil {
		s.mu.Lock()
		s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: msg}, true)
		s.mu.Unlock()
		go s.Lost(fmt.Errorf("claude hung and could not be restarted: %w", rerr))
		return
	}
	s.mu.Lock()
	s.endStalledLocked(t, msg)
	s.mu.Unlock()
}

// restart kills the claude of generation gen and starts a new one on the
// same session (--resume).
func (s *session) restart(gen int) error {
	s.mu.Lock()
	if s.gen != gen || s.stopping {
		s.mu.Unlock()
		return errors.New("the session is closing")
	}
	s.gen++ // the old process's end is not the session's
	old, id := s.proc, s.sessionID
	s.mu.Unlock()
	old.Kill()
	<-old.Done()
	return s.spawn(s.stopCtx, id, "--resume="+id)
}

func (s *session) stallMsg() string {
	return fmt.Sprintf("claude printed nothing for %v during the turn; it was interrupted", s.cfg.stallTimeout)
}

// endStalledLocked ends a stalled turn, failed with a turn_stalled Error
// saying msg.
func (s *session) endStalledLocked(t *turn, msg string) {
	t.pt.Emit(sdk.ErrorEvent("", "turn_stalled", msg, false))
	s.endLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: msg}, true)
}

// userLine is a user message: a turn's text or a steered text, with the
// uuid claude replays it with when it takes it.
func userLine(id, text string) []byte {
	return mustLine(map[string]any{
		"type":               "user",
		"uuid":               id,
		"message":            map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": text}}},
		"parent_tool_use_id": nil,
		"session_id":         "",
	})
}
