package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/convert"
	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// Resubscription backoff after a broken Events stream.
const (
	minResubscribe = 10 * time.Millisecond
	maxResubscribe = time.Second
)

// Session is one open session in a plugin.
type Session struct {
	p  *Plugin
	id string

	out chan sdk.Event
	// queue holds events received but not yet taken by the consumer, so a
	// slow consumer never stalls the gRPC stream (and with it the plugin's
	// other sessions on the same connection).
	mu       sync.Mutex
	queue    []sdk.Event
	finished bool          // no event will be queued any more
	notify   chan struct{} // signalled when the queue or finished changes
	received chan struct{} // closed when receive has returned

	// allowGap: a resumed session takes what the plugin still buffers
	// (EventsRequest.allow_gap) and reports a gap as EventsDropped.
	allowGap bool
	after    uint64    // the last seq queued
	first    *firstSub // the subscription ResumeSession opened, taken by receive
}

// firstSub is a subscription already open, with its first event read.
type firstSub struct {
	stream grpc.ServerStreamingClient[backendv1.Event]
	event  *backendv1.Event
	cancel context.CancelFunc
}

// EventsDropped is the code of the non-fatal EventError a resumed session
// delivers when the plugin no longer held some of the events after the
// seq the host asked for: they happened while no host read them, and the
// plugin's buffer overflowed. The events after the gap follow.
const EventsDropped = "events_dropped"

// OpenSession opens a session and subscribes to its events at once; the
// plugin buffers what happens in between, so nothing is lost.
func (p *Plugin) OpenSession(ctx context.Context, cfg sdk.SessionConfig) (*Session, error) {
	if p.exited() {
		return nil, p.exitedErr()
	}
	resp, err := p.rpc.OpenSession(ctx, convert.SessionConfigToProto(cfg))
	if err != nil {
		return nil, p.mapErr(ctx, err)
	}
	return p.follow(newSession(p, resp.GetSessionId())), nil
}

func newSession(p *Plugin, id string) *Session {
	return &Session{
		p:        p,
		id:       id,
		out:      make(chan sdk.Event),
		notify:   make(chan struct{}, 1),
		received: make(chan struct{}),
	}
}

// follow starts reading the session's events.
func (p *Plugin) follow(s *Session) *Session {
	p.track(s)
	go s.receive()
	go s.deliver()
	return s
}

// ResumeSession follows the events of a session that is already open in
// the plugin (opened by this host's predecessor, before it detached),
// starting after afterSeq: the last event the host saw. Nothing after
// afterSeq is lost or delivered twice, as far as the plugin still buffers
// it; when the plugin no longer holds some of the events after afterSeq,
// the session first delivers a non-fatal EventError with code
// EventsDropped that says how many were lost (its Seq is that of the last
// lost event), then what the plugin still has. A broken stream is
// subscribed again like an opened session's.
//
// A session whose Exited the host already saw (afterSeq is its seq)
// yields a channel that closes at once, empty.
//
// An unknown session is an error wrapping sdk.ErrSessionNotFound. The
// plugin is asked at once, replaying the event afterSeq to learn that the
// session exists; with afterSeq 0 and a session that has emitted nothing
// yet, ResumeSession waits for its first event, up to ctx's end.
func (p *Plugin) ResumeSession(ctx context.Context, id string, afterSeq uint64) (*Session, error) {
	if p.exited() {
		return nil, p.exitedErr()
	}
	probe := afterSeq
	if probe > 0 {
		probe-- // the event afterSeq exists (or a later one, after a gap): the answer is at once
	}
	// The stream outlives ctx, which bounds only this first answer.
	sctx, cancel := context.WithCancel(p.ctx)
	stopWatch := context.AfterFunc(ctx, cancel)
	stream, err := p.rpc.Events(sctx, &backendv1.EventsRequest{SessionId: id, AfterSeq: probe, AllowGap: true})
	var first *backendv1.Event
	if err == nil {
		first, err = stream.Recv()
	}
	if !stopWatch() {
		cancel()
		return nil, fmt.Errorf("resume session %q of plugin %s: %w", id, p.name, ctx.Err())
	}
	if errors.Is(err, io.EOF) {
		cancel()
		return nil, fmt.Errorf("resume session %q of plugin %s: the plugin ended the event stream at once: %w", id, p.name, sdk.ErrSessionNotFound)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("resume session %q of plugin %s: %w", id, p.name, p.mapErr(ctx, err))
	}
	s := newSession(p, id)
	s.allowGap = true
	s.after = afterSeq
	s.first = &firstSub{stream: stream, event: first, cancel: cancel}
	return p.follow(s), nil
}

// ID is the plugin's id for the session.
func (s *Session) ID() string { return s.id }

// Send delivers input. Errors wrap the sdk sentinels: sdk.ErrTurnRunning,
// sdk.ErrSessionNotFound, sdk.ErrUnsupported, sdk.ErrShuttingDown,
// sdk.ErrPluginExited.
func (s *Session) Send(ctx context.Context, in sdk.Input) (sdk.Delivery, error) {
	if s.p.exited() {
		return sdk.Delivery{}, s.p.exitedErr()
	}
	resp, err := s.p.rpc.Send(ctx, &backendv1.SendRequest{SessionId: s.id, Input: convert.InputToProto(in)})
	if err != nil {
		return sdk.Delivery{}, s.p.mapErr(ctx, err)
	}
	return convert.DeliveryFromProto(resp)
}

// Close closes the session. With CloseGraceful the plugin may take until
// ctx's deadline. Closing a closed session, or one whose plugin has exited,
// succeeds: nothing of it is left.
func (s *Session) Close(ctx context.Context, mode sdk.CloseMode) error {
	if s.p.isDetached() && !s.p.debug {
		return s.p.exitedErr()
	}
	if s.p.exited() {
		return nil
	}
	req := &backendv1.CloseSessionRequest{SessionId: s.id, Mode: convert.CloseModeToProto(mode)}
	if dl, ok := ctx.Deadline(); ok {
		// Leave the plugin a tenth of the time to answer after closing.
		if ms := time.Until(dl).Milliseconds() * 9 / 10; ms > 0 {
			req.GraceMs = uint32(min(ms, 1<<31))
		}
	}
	if _, err := s.p.rpc.CloseSession(ctx, req); err != nil {
		if s.p.exited() {
			return nil
		}
		return s.p.mapErr(ctx, err)
	}
	return nil
}

// Events delivers the session's events in order, numbered without gaps,
// and is closed after the Exited event. When the plugin process dies, a
// synthetic Exited (reason sdk.ExitPluginExited) is delivered last. Read it
// to the end: undelivered events are kept for the reader.
//
// After the host detached from the plugin (Plugin.Detach), the channel is
// closed without an Exited event: the session lives on in the plugin, and
// a successor follows it with ResumeSession after the last seq seen here.
func (s *Session) Events() <-chan sdk.Event { return s.out }

// receive follows the plugin's Events stream into the queue, subscribing
// again after the last seen seq when the stream breaks while the plugin
// lives.
func (s *Session) receive() {
	defer s.finish()
	backoff := minResubscribe
	for {
		err := s.subscribe(&backoff)
		if err == nil {
			return // Exited delivered
		}
		if s.p.isDetached() {
			return // the host let go on purpose: no Exited
		}
		after := s.after
		switch status.Code(err) {
		case codes.NotFound, codes.OutOfRange:
			// Replaying is impossible: say so in the stream and end it.
			s.p.log.Error("session events lost", "session", s.id, "after_seq", after, "error", err)
			s.push(sdk.Event{Kind: sdk.EventError, SessionID: s.id, Seq: after + 1, Time: time.Now(),
				Error: &sdk.ErrorInfo{Code: ExitEventsLost, Message: err.Error(), Fatal: true}})
			s.push(s.exitedEvent(after+2, ExitEventsLost))
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-s.p.done:
			t.Stop()
			if s.p.isDetached() {
				return
			}
			s.push(s.exitedEvent(after+1, sdk.ExitPluginExited))
			return
		case <-t.C:
		}
		s.p.log.Debug("resubscribing to session events", "session", s.id, "after_seq", after, "error", err)
		backoff = min(backoff*2, maxResubscribe)
	}
}

// subscribe reads one subscription (the one ResumeSession opened, else a
// new one after s.after). It returns nil after Exited, else why the
// stream ended.
func (s *Session) subscribe(backoff *time.Duration) error {
	// Cancelling the stream after Exited is the host's acknowledgement: the
	// plugin holds the stream open until then (it may be about to exit).
	var (
		stream  grpc.ServerStreamingClient[backendv1.Event]
		pending *backendv1.Event
	)
	if f := s.first; f != nil {
		s.first = nil
		defer f.cancel()
		stream, pending = f.stream, f.event
	} else {
		ctx, cancel := context.WithCancel(s.p.ctx)
		defer cancel()
		var err error
		stream, err = s.p.rpc.Events(ctx, &backendv1.EventsRequest{SessionId: s.id, AfterSeq: s.after, AllowGap: s.allowGap})
		if err != nil {
			return err
		}
	}
	for {
		pe := pending
		pending = nil
		if pe == nil {
			var err error
			if pe, err = stream.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return status.Error(codes.Unavailable, "event stream ended before Exited")
				}
				return err
			}
		}
		*backoff = minResubscribe
		seq := pe.GetSeq()
		if seq <= s.after {
			// Already queued: ResumeSession's first answer replays the
			// last event the host saw.
			if pe.GetExited() != nil {
				return nil
			}
			continue
		}
		if s.allowGap && seq > s.after+1 {
			lost := seq - s.after - 1
			s.p.log.Warn("session events dropped by the plugin", "session", s.id, "after_seq", s.after, "lost", lost)
			s.push(sdk.Event{Kind: sdk.EventError, SessionID: s.id, Seq: seq - 1, Time: time.Now(),
				Error: &sdk.ErrorInfo{Code: EventsDropped, Message: fmt.Sprintf(
					"%d events of the session (seq %d to %d) were lost: they happened while no host read them, "+
						"and the plugin no longer held them; the session goes on from seq %d", lost, s.after+1, seq-1, seq)}})
		}
		s.after = seq
		ev, err := convert.EventFromProto(pe)
		if err != nil {
			s.p.log.Warn("skipping an event this host does not understand", "session", s.id, "error", err)
			continue
		}
		s.push(ev)
		if ev.Kind == sdk.EventExited {
			return nil
		}
	}
}

func (s *Session) exitedEvent(seq uint64, reason string) sdk.Event {
	return sdk.Event{Kind: sdk.EventExited, SessionID: s.id, Seq: seq, Time: time.Now(),
		Exited: &sdk.ExitInfo{Reason: reason}}
}

func (s *Session) push(ev sdk.Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.signal()
}

func (s *Session) finish() {
	s.p.untrack(s)
	s.mu.Lock()
	s.finished = true
	s.mu.Unlock()
	s.signal()
	close(s.received)
}

func (s *Session) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// deliver hands queued events to the consumer and closes the channel once
// the receiver finished and the queue is empty.
func (s *Session) deliver() {
	defer close(s.out)
	for {
		s.mu.Lock()
		var ev sdk.Event
		have := len(s.queue) > 0
		if have {
			ev = s.queue[0]
			s.queue[0] = sdk.Event{}
			s.queue = s.queue[1:]
		}
		finished := s.finished
		s.mu.Unlock()
		switch {
		case have:
			s.out <- ev
		case finished:
			return
		default:
			<-s.notify
		}
	}
}
