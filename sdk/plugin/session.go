package plugin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tthost/tthost/sdk"
)

const (
	// closeCancelTimeout bounds the Cancel hook a Close calls for the
	// running turn.
	closeCancelTimeout = 2 * time.Second
	// closeSettle is how long a Close waits for a cancelled turn to end
	// before it stops the CLI; a turn still running then ends interrupted.
	closeSettle = time.Second
	// turnEndWait bounds how long a steer that raced its turn's end waits
	// for that end before it gives up (the host then queues the input).
	turnEndWait = 30 * time.Second
)

// ErrTurnEnded is what a Driver's Steer or Cancel hook returns when the
// CLI says the turn has already ended. For a steer, the Session waits for
// that turn's end and starts a new turn with the input (DeliveryStarted);
// for a cancel, the turn keeps its own outcome (DeliveryNoTurn).
var ErrTurnEnded = errors.New("the turn has already ended")

// Driver is what a backend tells a Session about its CLI: only what
// differs between CLIs. The Session does the rest of the contract (turn
// ids, one turn at a time, the order of events, transcripts, cancel and
// close, input before the CLI is ready, the race between a steer and the
// end of a turn).
//
// The Session calls every hook without holding its lock, so a hook may
// block on the CLI while the driver's reader goes on reporting output and
// ends. Hooks may run concurrently with each other (a Cancel while a Steer
// waits), but never two StartTurn at once. Only StartTurn is required.
type Driver struct {
	// Start waits until the CLI is ready for its first turn and returns
	// what SessionReady says (a runtime session id to resume it later, or
	// why a resume failed). It runs on a goroutine of its own, started by
	// NewSession, so OpenSession returns at once. ctx ends when Close
	// begins, and Close also calls Stop, so a Start blocked on the CLI's
	// output returns. An error ends the session: a fatal Error
	// (start_failed) saying it, then Exited. nil: the session is ready at
	// once, with Ready.
	Start func(ctx context.Context) (sdk.SessionReady, error)
	// Ready is what SessionReady says when Start is nil.
	Ready sdk.SessionReady

	// StartTurn gives a turn's input to the CLI and returns once the CLI
	// has it, not when the turn ends: the driver reports output through
	// the Turn and the end with Turn.Answered or Turn.Complete, usually
	// from the goroutine that reads the CLI's output. An error means the
	// CLI did not get the input: Send fails with it and the session stays
	// idle (for a turn accepted before the session was ready, the turn
	// fails instead). Use t.ID() in what the CLI sees, if it needs an id.
	StartTurn func(ctx context.Context, t *Turn, text string) error
	// Steer gives urgent input to the running turn t. nil: the backend
	// cannot steer (urgent input while a turn runs fails with
	// sdk.ErrTurnRunning). Return nil once the CLI has taken the text into
	// t, ErrTurnEnded when the CLI says t has already ended, or another
	// error when the text did not reach the CLI (Send fails with it, and
	// the host queues the input). See Turn.Answered for how the end of a
	// steered turn is recognised.
	Steer func(ctx context.Context, t *Turn, text string) error
	// SteerMode is how Steer joins input to the turn, for SessionReady and
	// every DeliverySteered (default sdk.SteerNative). A driver whose CLI
	// cannot take input mid-turn emulates it: sdk.SteerQueue prompts the
	// input once the CLI's running prompt ends, sdk.SteerRestart cancels
	// that prompt and prompts again with the input merged; either way
	// within the same turn, whose end then waits for the input's answer.
	SteerMode sdk.SteerMode
	// Cancel asks the CLI to stop the running turn t, and returns without
	// waiting for the end, which the driver reports as usual (it ends
	// interrupted, whatever the CLI says). It may race t's end: when the
	// CLI had already finished t (a one-shot CLI that exited), return
	// ErrTurnEnded and t's own outcome stands (Send answers
	// DeliveryNoTurn), so a finished turn is never reported interrupted
	// and run again. nil: the backend cannot cancel (sdk.ErrUnsupported).
	Cancel func(ctx context.Context, t *Turn) error
	// Stop ends the CLI and returns how it ended (ExitCode and Signal of
	// the Exited event) once every process of the session is gone. Close
	// calls it after the running turn ended (or was cancelled); a
	// CloseGraceful Stop may take until ctx ends, which a later
	// CloseImmediate also ends. Process.Close is a Stop. nil: nothing to
	// stop.
	Stop func(ctx context.Context, mode sdk.CloseMode) sdk.ExitInfo

	// TurnPrefix makes turn ids: the prefix and a count from 1. Default
	// "t".
	TurnPrefix string
}

// Session is a ready-made sdk.Session: the life cycle of one agent's CLI
// session, driven by a Driver. OpenSession returns NewSession's result
// (or a type that embeds it).
//
// What a Session guarantees:
//
//   - OpenSession returns at once; SessionReady then AwaitingInput are
//     emitted when Start returns. Input sent before that is accepted: a
//     turn is held (Send answers DeliveryStarted with its id) and given to
//     the CLI once it is ready; urgent input waits until the CLI has the
//     turn, then is steered into it as into any running turn (Send returns
//     then); a cancel ends it interrupted at once, without the CLI seeing
//     it. If the CLI never becomes ready, the session ends
//     with a fatal Error (start_failed) and Exited, and the held turn,
//     which never started, has no events.
//   - One turn at a time: a turn sent while one runs fails with
//     sdk.ErrTurnRunning. Every turn's events are TurnStarted, its output
//     and events, exactly one TurnCompleted, then AwaitingInput unless the
//     session is closing. A turn whose cancel was answered
//     DeliveryCancelled ends interrupted.
//   - Steering is honest: urgent input is answered DeliverySteered only if
//     the CLI took it into the running turn before that turn's end was
//     committed (the end is held back while a Steer hook runs). Urgent
//     input that comes after the end starts a new turn (DeliveryStarted);
//     urgent input for a turn being cancelled fails with
//     sdk.ErrTurnRunning, so that the host queues it.
//   - Close (graceful: the running turn may finish until ctx ends;
//     immediate: it is cancelled) ends a running turn with one
//     TurnCompleted, stops the CLI, emits Exited last and returns once
//     Stop says every process is gone. Close may be called again, and an
//     immediate Close ends a graceful one's wait.
//   - When the CLI ends on its own (Lost), a fatal Error, the running
//     turn's failed TurnCompleted, then Exited.
//   - Nothing is emitted after Exited.
type Session struct {
	events sdk.EventSink
	d      Driver

	startCtx   context.Context
	stopStart  context.CancelFunc
	life       context.Context // ends with Exited
	endLife    context.CancelFunc
	startDone  chan struct{} // closed when Start has an outcome
	closeBegun chan struct{} // closed when the first Close begins
	hurry      chan struct{} // closed by an immediate Close
	lostCh     chan struct{} // closed when the CLI is gone (Lost)
	exited     chan struct{} // closed after Exited
	hurryOnce  sync.Once
	lostOnce   sync.Once

	mu      sync.Mutex
	ready   bool
	closing bool
	ending  string // why the CLI is gone, when it is: input fails with it
	done    bool   // Exited was emitted
	turns   int
	running *Turn       // accepted and not completed: held, starting or running
	early   []sdk.Event // Emit before SessionReady: they follow it
}

// NewSession returns a Session for events, driven by d, and starts d.Start
// (or emits SessionReady and AwaitingInput at once, without Start).
func NewSession(events sdk.EventSink, d Driver) *Session {
	if d.TurnPrefix == "" {
		d.TurnPrefix = "t"
	}
	switch {
	case d.Steer == nil:
		d.SteerMode = ""
	case d.SteerMode == "":
		d.SteerMode = sdk.SteerNative
	}
	s := &Session{
		events:     events,
		d:          d,
		startDone:  make(chan struct{}),
		closeBegun: make(chan struct{}),
		hurry:      make(chan struct{}),
		lostCh:     make(chan struct{}),
		exited:     make(chan struct{}),
	}
	s.startCtx, s.stopStart = context.WithCancel(context.Background())
	s.life, s.endLife = context.WithCancel(context.Background())
	if d.Start == nil {
		s.mu.Lock()
		s.readyLocked(d.Ready)
		s.mu.Unlock()
		close(s.startDone)
		return s
	}
	go s.start()
	return s
}

// start runs Driver.Start, then gives a held turn to the CLI.
func (s *Session) start() {
	ready, err := s.d.Start(s.startCtx)
	s.mu.Lock()
	if err != nil {
		// Unless Close came first (it ends the session then), the session
		// takes no input from here on.
		mine := !s.closing
		if mine {
			s.ending = "the CLI did not start: " + err.Error()
		}
		s.mu.Unlock()
		close(s.startDone)
		if mine {
			s.startFailed(err)
		}
		return
	}
	s.readyLocked(ready)
	close(s.startDone)
	t := s.running
	switch {
	case t == nil || s.closing:
		s.mu.Unlock()
	case t.cancelled:
		s.commitLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled before the CLI was ready"})
		s.mu.Unlock()
	default:
		t.phase, t.open = phaseStarting, 1
		text := t.text
		s.mu.Unlock()
		err := s.d.StartTurn(s.life, t, text)
		s.mu.Lock()
		if t.phase != phaseDone && !s.done {
			s.announceLocked(t)
			if err != nil {
				// Accepted long ago: a failure to start it is the turn's.
				s.emitLocked(sdk.ErrorEvent(t.id, "start_failed", err.Error(), false))
				s.commitLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: err.Error()})
			}
		}
		s.begunLocked(t)
		s.mu.Unlock()
	}
}

func (s *Session) readyLocked(ready sdk.SessionReady) {
	s.ready = true
	ready.SteerMode = s.d.SteerMode
	// Emitted even when closing: a host may keep the runtime session id.
	s.emitLocked(sdk.SessionReadyEvent(ready))
	s.flushEarlyLocked()
	if !s.closing {
		s.emitLocked(sdk.AwaitingInputEvent())
	}
}

// startFailed ends a session whose CLI never became ready.
func (s *Session) startFailed(err error) {
	info := s.stop(context.Background(), sdk.CloseImmediate)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushEarlyLocked()
	msg := err.Error()
	if t := s.running; t != nil {
		// Held, so it never started: no event of its own.
		msg += fmt.Sprintf("; turn %s, accepted before the CLI was ready, was not run", t.id)
		s.dropLocked(t)
	}
	s.emitLocked(sdk.ErrorEvent("", "start_failed", msg, true))
	info.Reason = sdk.ExitCLIExited
	s.exitLocked(info)
}

// Send implements sdk.Session.
func (s *Session) Send(ctx context.Context, in sdk.Input) (sdk.Delivery, error) {
	switch in.Kind {
	case sdk.InputCancel:
		return s.cancel(ctx)
	case sdk.InputTurn, sdk.InputUrgent:
	default:
		return sdk.Delivery{}, fmt.Errorf("%w: input kind %v", sdk.ErrUnsupported, in.Kind)
	}
	s.mu.Lock()
	for {
		if err := s.usableLocked(); err != nil {
			s.mu.Unlock()
			return sdk.Delivery{}, err
		}
		t := s.running
		if t == nil {
			return s.startTurnLocked(ctx, in)
		}
		if in.Kind == sdk.InputTurn || s.d.Steer == nil {
			s.mu.Unlock()
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s has not finished", sdk.ErrTurnRunning, t.id)
		}
		if t.cancelled {
			s.mu.Unlock()
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s is being cancelled; send the input again once it has ended", sdk.ErrTurnRunning, t.id)
		}
		if t.phase == phaseHeld || t.phase == phaseStarting {
			// Steered once the CLI has the turn (a held turn waits for the
			// CLI to be ready), so that the receipt says what happened.
			if err := s.waitLocked(ctx, t.begun, 0); err != nil {
				s.mu.Unlock()
				return sdk.Delivery{}, err
			}
			continue
		}
		d, err, again := s.steerLocked(ctx, t, in)
		if !again {
			s.mu.Unlock()
			return d, err
		}
	}
}

// startTurnLocked starts a turn with no turn running; it unlocks s.mu.
func (s *Session) startTurnLocked(ctx context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.turns++
	t := &Turn{
		s:     s,
		id:    s.d.TurnPrefix + strconv.Itoa(s.turns),
		text:  in.Text,
		begun: make(chan struct{}),
		done:  make(chan struct{}),
	}
	// Opened before the CLI gets anything, so no output is lost. A
	// transcript that cannot be written fails nothing: the output still
	// reaches the host as events, and an Error says why the file lacks it.
	t.transcript, t.trErr = OpenTranscript(in.TranscriptPath)
	s.running = t
	if !s.ready {
		t.phase, t.public = phaseHeld, true
		s.mu.Unlock()
		return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}, nil
	}
	t.phase, t.open = phaseStarting, 1
	s.mu.Unlock()
	err := s.d.StartTurn(ctx, t, in.Text)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.begunLocked(t)
	switch {
	case t.announced:
		// The turn is the host's now (its TurnStarted is out), whatever
		// else happened.
		if err != nil && t.phase != phaseDone && !s.done {
			s.emitLocked(sdk.ErrorEvent(t.id, "start_failed", err.Error(), false))
			s.commitLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: err.Error()})
		}
	case err == nil && t.phase != phaseDone && !s.done:
		s.announceLocked(t)
	default:
		// Nothing reached the host: the session stays idle.
		s.dropLocked(t)
		if err == nil {
			err = s.usableLocked()
		}
		return sdk.Delivery{}, err
	}
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}, nil
}

// steerLocked gives urgent input to the running turn t. It returns with
// s.mu held; again says the input must be delivered again from the start
// (t ended first: a new turn).
func (s *Session) steerLocked(ctx context.Context, t *Turn, in sdk.Input) (d sdk.Delivery, err error, again bool) {
	// Until the hook says how it went, the steer counts as an input the
	// CLI has not answered, and an end the driver reports meanwhile is
	// held back: the turn cannot end under the steer's feet.
	t.open++
	t.steering++
	s.mu.Unlock()
	err = s.d.Steer(ctx, t, in.Text)
	s.mu.Lock()
	t.steering--
	if err != nil {
		t.open--
	} else if t.phase != phaseDone {
		t.transcript.Note("urgent input was steered into this turn")
	}
	s.settleLocked(t)
	switch {
	case err == nil:
		return sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: t.id, SteerMode: s.d.SteerMode}, nil, false
	case errors.Is(err, ErrTurnEnded):
		// The CLI ended the turn first: wait for its end to be reported,
		// then the input starts the next turn.
		if err := s.waitLocked(ctx, t.done, turnEndWait); err != nil {
			return sdk.Delivery{}, fmt.Errorf("turn %s ended before the urgent input reached it, and did not report its end: %w", t.id, err), false
		}
		return sdk.Delivery{}, nil, true
	}
	return sdk.Delivery{}, err, false
}

// waitLocked waits, without s.mu, until ch is closed, ctx ends, timeout
// passes (0: no timeout) or the session ends; it returns with s.mu held.
func (s *Session) waitLocked(ctx context.Context, ch <-chan struct{}, timeout time.Duration) error {
	s.mu.Unlock()
	defer s.mu.Lock()
	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.exited:
		return nil // usableLocked says why
	case <-expired:
		return fmt.Errorf("gave up waiting after %v", timeout)
	}
}

func (s *Session) cancel(ctx context.Context) (sdk.Delivery, error) {
	if s.d.Cancel == nil {
		return sdk.Delivery{}, fmt.Errorf("%w: this backend cannot cancel a turn", sdk.ErrUnsupported)
	}
	s.mu.Lock()
	var t *Turn
	for {
		if err := s.usableLocked(); err != nil {
			s.mu.Unlock()
			return sdk.Delivery{}, err
		}
		t = s.running
		if t == nil {
			s.mu.Unlock()
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		if t.phase == phaseHeld {
			// Never given to the CLI: it ends interrupted once the
			// session is ready.
			t.cancelled = true
			s.mu.Unlock()
			return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: t.id}, nil
		}
		if t.phase != phaseStarting {
			break
		}
		if err := s.waitLocked(ctx, t.begun, turnEndWait); err != nil {
			s.mu.Unlock()
			return sdk.Delivery{}, err
		}
	}
	already := t.cancelled
	t.cancelled = true
	s.mu.Unlock()
	if err := s.d.Cancel(ctx, t); err != nil {
		s.mu.Lock()
		if !already && t.phase != phaseDone {
			t.cancelled = false
		}
		s.mu.Unlock()
		if errors.Is(err, ErrTurnEnded) {
			// The CLI had finished the turn before the cancel reached it:
			// its outcome stands (a finished turn reported interrupted
			// would be delivered again), and there is nothing to cancel.
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		return sdk.Delivery{}, err
	}
	return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: t.id}, nil
}

// usableLocked says why the session takes no input, or nil.
func (s *Session) usableLocked() error {
	switch {
	case s.closing:
		return fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
	case s.ending != "":
		return fmt.Errorf("%w: %s; open a new session", sdk.ErrSessionNotFound, s.ending)
	}
	return nil
}

// Close implements sdk.Session.
func (s *Session) Close(ctx context.Context, mode sdk.CloseMode) error {
	if mode != sdk.CloseGraceful {
		s.hurryOnce.Do(func() { close(s.hurry) })
	}
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	s.mu.Unlock()
	if !first {
		<-s.exited
		return nil
	}
	close(s.closeBegun)
	s.stopStart()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.hurry:
			cancel()
		case <-sctx.Done():
		}
	}()

	select {
	case <-s.startDone:
	default:
		// A start in progress is abandoned, whatever the mode: there is no
		// turn to let finish.
		info := s.stop(sctx, sdk.CloseImmediate)
		<-s.startDone
		s.finishClose(info)
		return nil
	}
	s.mu.Lock()
	t, ending, ready := s.running, s.ending != "", s.ready
	s.mu.Unlock()
	switch {
	case ending:
		<-s.exited // the CLI's end emits Exited
		return nil
	case !ready:
		// Start failed as Close began.
		s.finishClose(s.stop(sctx, sdk.CloseImmediate))
		return nil
	}
	if t != nil && mode == sdk.CloseGraceful {
		select {
		case <-t.done:
		case <-sctx.Done():
		case <-s.lostCh:
		}
	}
	s.mu.Lock()
	t = s.running
	cancelIt := t != nil && t.phase == phaseRunning && s.d.Cancel != nil
	if t != nil {
		t.cancelled = true
	}
	s.mu.Unlock()
	if cancelIt && ctx.Err() == nil {
		cctx, cancelCancel := context.WithTimeout(ctx, closeCancelTimeout)
		if err := s.d.Cancel(cctx, t); err == nil {
			settle := time.NewTimer(closeSettle)
			select {
			case <-t.done:
			case <-settle.C:
			case <-s.lostCh:
			case <-cctx.Done():
			}
			settle.Stop()
		}
		cancelCancel()
	}
	s.finishClose(s.stop(sctx, mode))
	return nil
}

func (s *Session) stop(ctx context.Context, mode sdk.CloseMode) sdk.ExitInfo {
	if s.d.Stop == nil {
		return sdk.ExitInfo{}
	}
	return s.d.Stop(ctx, mode)
}

// finishClose ends a closed session: its running turn, then Exited.
func (s *Session) finishClose(info sdk.ExitInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if t := s.running; t != nil {
		if t.announced {
			s.commitLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "the session was closed"})
		} else {
			s.dropLocked(t)
		}
	}
	s.flushEarlyLocked()
	info.Reason = sdk.ExitClosed
	s.exitLocked(info)
}

// Lost tells the Session that the CLI has ended on its own (or that the
// driver gave up on it): call it once the CLI's output has been read to
// its end, so that nothing the CLI said is lost. The Session calls Stop
// (to be sure every process is gone), then emits a fatal Error (code
// cli_exited) saying err, or how the CLI ended when err is nil; the
// running turn's TurnCompleted (failed); and Exited (cli_exited). During a
// Close, or after the session ended, it does nothing but let Close go on.
func (s *Session) Lost(err error) {
	s.lostOnce.Do(func() { close(s.lostCh) })
	s.mu.Lock()
	if s.closing || s.ending != "" || s.done || !s.ready {
		s.mu.Unlock()
		return
	}
	s.ending = "the CLI exited"
	s.mu.Unlock()
	info := s.stop(context.Background(), sdk.CloseImmediate)
	msg := "the CLI exited (" + DescribeExit(info) + ")"
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ending = msg
	if s.done {
		return
	}
	// The fatal error first: a host reads a turn that fails after one as
	// "the runtime died, not the work", and delivers it again.
	s.emitLocked(sdk.ErrorEvent("", "cli_exited", msg, true))
	if t := s.running; t != nil {
		if t.announced {
			s.commitLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: msg, ExitCode: info.ExitCode})
		} else {
			s.dropLocked(t)
		}
	}
	info.Reason = sdk.ExitCLIExited
	s.exitLocked(info)
}

// Running returns the turn the CLI is running (its input was given, its
// end not yet committed), or nil. A turn held before the session was
// ready is not running yet.
func (s *Session) Running() *Turn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.running; t != nil && t.phase != phaseHeld {
		return t
	}
	return nil
}

// Emit emits an event of the session's own (an Error with no turn, ...),
// in order with the Session's events. Emitted before the session is
// ready, it follows SessionReady (a session starts with SessionReady). It
// does nothing after Exited.
func (s *Session) Emit(ev sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		s.early = append(s.early, ev)
		return
	}
	s.emitLocked(ev)
}

func (s *Session) flushEarlyLocked() {
	for _, ev := range s.early {
		s.emitLocked(ev)
	}
	s.early = nil
}

// Closing reports whether Close has begun.
func (s *Session) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// CloseBegun is closed when the first Close begins.
func (s *Session) CloseBegun() <-chan struct{} { return s.closeBegun }

// Exited is closed once the session's Exited event was emitted.
func (s *Session) Exited() <-chan struct{} { return s.exited }

// Context ends when the session has ended (Exited): for work of the
// driver's own that must not outlive the session.
func (s *Session) Context() context.Context { return s.life }

func (s *Session) emitLocked(ev sdk.Event) {
	if !s.done {
		s.events.Emit(ev)
	}
}

func (s *Session) exitLocked(info sdk.ExitInfo) {
	if s.done {
		return
	}
	s.emitLocked(sdk.ExitedEvent(info))
	s.done = true
	s.endLife()
	close(s.exited)
}

// announceLocked emits the turn's TurnStarted, once, before any event of
// the turn.
func (s *Session) announceLocked(t *Turn) {
	if t.announced || s.done {
		return
	}
	t.announced, t.public = true, true
	s.emitLocked(sdk.TurnStartedEvent(t.id))
	if t.trErr != nil {
		t.trReported = true
		s.emitLocked(sdk.ErrorEvent(t.id, "transcript_failed", t.trErr.Error()+"; the turn's output is only in the events", false))
	}
}

// endLocked is the driver's report that t ended.
func (s *Session) endLocked(t *Turn, c sdk.TurnCompleted) {
	if t.phase == phaseDone || s.done {
		return
	}
	if t.steering > 0 {
		t.held = &c // committed when the steer knows how it went
		return
	}
	s.commitLocked(t, c)
}

// settleLocked commits an end that was held back while steers ran, once
// none runs, unless a steer made the turn wait for another answer.
func (s *Session) settleLocked(t *Turn) {
	if t.steering > 0 || t.phase == phaseDone || s.done {
		return
	}
	switch {
	case t.held != nil:
		c := *t.held
		t.held = nil
		s.commitLocked(t, c)
	case t.answered && t.open <= 0:
		s.commitLocked(t, t.last)
	}
}

// commitLocked ends t with its one TurnCompleted.
func (s *Session) commitLocked(t *Turn, c sdk.TurnCompleted) {
	if t.phase == phaseDone || s.done {
		return
	}
	s.announceLocked(t)
	if rest := t.utf8.flush(); rest != "" {
		s.emitLocked(sdk.DeltaEvent(t.id, rest))
	}
	if t.cancelled && c.Status != sdk.StatusInterrupted {
		summary := "cancelled"
		if c.Error != "" {
			summary += ": " + c.Error
		}
		c = sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: summary, ExitCode: c.ExitCode}
	}
	if err := t.transcript.Close(); err != nil && !t.trReported {
		s.emitLocked(sdk.ErrorEvent(t.id, "transcript_failed", "writing the transcript: "+err.Error(), false))
	}
	s.emitLocked(sdk.TurnCompletedEvent(t.id, c))
	t.phase = phaseDone
	close(t.done)
	t.closeBegunLocked()
	if s.running == t {
		s.running = nil
	}
	if !s.closing && s.ending == "" {
		s.emitLocked(sdk.AwaitingInputEvent())
	}
}

// dropLocked forgets a turn that never reached the host's events.
func (s *Session) dropLocked(t *Turn) {
	if t.phase == phaseDone {
		return
	}
	_ = t.transcript.Close()
	t.phase = phaseDone
	close(t.done)
	t.closeBegunLocked()
	if s.running == t {
		s.running = nil
	}
}

// begunLocked records that StartTurn returned.
func (s *Session) begunLocked(t *Turn) {
	t.closeBegunLocked()
	if t.phase == phaseStarting {
		t.phase = phaseRunning
	}
}

// closeBegunLocked wakes whoever waits for t to reach the CLI: it did, or
// it ended.
func (t *Turn) closeBegunLocked() {
	if !t.begunShut {
		t.begunShut = true
		close(t.begun)
	}
}

type turnPhase int

const (
	phaseHeld     turnPhase = iota // accepted before the session was ready
	phaseStarting                  // StartTurn runs
	phaseRunning                   // the CLI has the input
	phaseDone                      // TurnCompleted emitted, or dropped
)

// Turn is one turn of a Session, as its Driver sees it: where the driver
// reports the turn's output and end. Its methods are safe for concurrent
// use and do nothing once the turn has ended, so a reader that raced a
// Close needs no checks.
type Turn struct {
	s *Session

	// Guarded by s.mu.
	id         string
	public     bool // the id is the host's: it can no longer change
	text       string
	phase      turnPhase
	announced  bool // TurnStarted was emitted
	cancelled  bool
	open       int  // inputs (the turn's, steers) the CLI has not answered
	steering   int  // Steer hooks running
	answered   bool // Answered was called
	last       sdk.TurnCompleted
	held       *sdk.TurnCompleted // an end reported while steers ran
	transcript *Transcript
	trErr      error
	trReported bool
	utf8       utf8Stream
	begun      chan struct{} // closed when StartTurn returned, or the turn ended
	begunShut  bool
	done       chan struct{} // closed when the turn ended
}

// ID is the turn's id, as the host knows it.
func (t *Turn) ID() string {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.id
}

// Name gives the turn the CLI's own id for it, when the CLI names its
// turns (the Codex app-server does), so that the host and the CLI's logs
// use the same id. It works only during StartTurn of a turn sent to a
// ready session, before any event of the turn; it reports whether the id
// changed.
func (t *Turn) Name(id string) bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.public || id == "" {
		return false
	}
	t.id = id
	return true
}

// Write reports the CLI's output, raw, as it comes: it goes to the
// transcript as it is, and to the host as assistant deltas of valid UTF-8
// (a character split across two writes is joined; bytes that are not
// UTF-8 become U+FFFD). It never fails, so io.Copy(t, output) works.
func (t *Turn) Write(p []byte) (int, error) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.phase == phaseDone || s.done || len(p) == 0 {
		return len(p), nil
	}
	s.announceLocked(t)
	if _, err := t.transcript.Write(p); err != nil && !t.trReported {
		t.trReported = true
		s.emitLocked(sdk.ErrorEvent(t.id, "transcript_failed",
			fmt.Sprintf("writing the transcript: %v; the rest of the output is only in the events", err), false))
	}
	if text := t.utf8.decode(p); text != "" {
		s.emitLocked(sdk.DeltaEvent(t.id, text))
	}
	return len(p), nil
}

// Output reports text the CLI wrote, as Write does.
func (t *Turn) Output(text string) { _, _ = t.Write([]byte(text)) }

// Emit emits an event of the turn (a ToolCall, Usage, Approval or Error
// event), in order with its other events; its TurnID is set to the
// turn's.
func (t *Turn) Emit(ev sdk.Event) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.phase == phaseDone || s.done {
		return
	}
	s.announceLocked(t)
	ev.TurnID = t.id
	s.emitLocked(ev)
}

// Transcript is the turn's transcript (nil when its Input named none),
// for lines of the driver's own (Transcript.Note). Write puts the CLI's
// output there already; the Session closes it when the turn ends.
func (t *Turn) Transcript() *Transcript {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.transcript
}

// Answered reports that the CLI has answered one input it was given for
// this turn: the turn's text or a steered text. The turn ends, with c,
// when every input given to it has been answered. This is the end of a
// CLI that answers each line or message it reads, a REPL: a steer writes
// one more input, and the turn ends at the end of its answer.
func (t *Turn) Answered(c sdk.TurnCompleted) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.phase == phaseDone {
		return
	}
	t.open--
	t.answered, t.last = true, c
	if t.open <= 0 {
		s.endLocked(t, c)
	}
}

// Complete reports that the CLI has ended the turn, with c, whatever it
// was given: the end of a CLI that takes steered input into the turn it
// runs (Codex's turn/completed), or of a one-shot CLI's process.
func (t *Turn) Complete(c sdk.TurnCompleted) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(t, c)
}

// Cancelled reports whether the turn is being cancelled (a cancel was
// answered DeliveryCancelled, or Close is ending it).
func (t *Turn) Cancelled() bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.cancelled
}

// Done is closed once the turn has ended (its TurnCompleted was emitted,
// or it never reached the host).
func (t *Turn) Done() <-chan struct{} { return t.done }
