package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/tthost/tthost/sdk"
)

// session is one agent's one-shot CLI: no process between turns, at most
// one turn (one `sh -c` process group) at a time.
type session struct {
	settings sessionSettings
	events   sdk.EventSink

	mu      sync.Mutex
	turns   int   // turns started, for turn ids
	running *turn // nil when idle
	closing bool  // Close was called: no new turns
	// closeStarted is closed when Close begins and exited once Exited was
	// emitted; later Close calls wait for exited.
	closeStarted chan struct{}
	exited       chan struct{}
}

func newSession(cfg sdk.SessionConfig, events sdk.EventSink) (*session, error) {
	settings, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	return &session{
		settings:     settings,
		events:       events,
		closeStarted: make(chan struct{}),
		exited:       make(chan struct{}),
	}, nil
}

func (s *session) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return sdk.Delivery{}, fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
	}
	switch in.Kind {
	case sdk.InputCancel:
		if s.running == nil {
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		s.running.interrupt()
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: s.running.id}, nil
	case sdk.InputTurn, sdk.InputUrgent:
		// Urgent input cannot join a one-shot turn (no steer capability);
		// when no turn runs it simply starts one.
		if s.running != nil {
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s has not finished", sdk.ErrTurnRunning, s.running.id)
		}
		s.turns++
		t := newTurn("turn-"+strconv.Itoa(s.turns), in, s.settings, s.events)
		s.running = t
		// Emitted under the lock, so it cannot overtake the previous turn's
		// AwaitingInput or follow this turn's own events.
		s.events.Emit(sdk.TurnStartedEvent(t.id))
		go s.runTurn(t)
		return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}, nil
	}
	return sdk.Delivery{}, fmt.Errorf("%w: input kind %v", sdk.ErrUnsupported, in.Kind)
}

// runTurn is the goroutine that owns a turn; Close waits for it through
// t.done.
func (s *session) runTurn(t *turn) {
	result := t.run()
	s.mu.Lock()
	// Decided under the session lock, the lock Send(cancel) holds: a cancel
	// that answered DeliveryCancelled always yields StatusInterrupted.
	if t.wasCancelled() {
		result = interrupted(result)
	}
	s.events.Emit(sdk.TurnCompletedEvent(t.id, result))
	// A closing session takes no more input, so it does not claim to await
	// any; Exited follows instead.
	if !s.closing {
		s.events.Emit(sdk.AwaitingInputEvent())
	}
	s.running = nil
	s.mu.Unlock()
	close(t.done)
}

// Close stops taking input, settles the running turn as the mode says and
// emits Exited. Every call returns only once the turn's processes are gone
// and Exited was emitted, so a second call (say, an immediate close after a
// graceful one that waits) can escalate but never returns early.
func (s *session) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	first := !s.closing
	if first {
		s.closing = true
		close(s.closeStarted)
	}
	t := s.running
	s.mu.Unlock()

	if t != nil {
		if mode != sdk.CloseGraceful {
			t.interrupt()
		}
		select {
		case <-t.done:
		case <-ctx.Done():
			t.interrupt()
		}
		// Bounded: an interrupted turn ends within killGrace+drainGrace.
		<-t.done
	}
	if first {
		s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
		close(s.exited)
	} else {
		<-s.exited
	}
	return nil
}
