package client

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

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
}

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
	s := &Session{
		p:        p,
		id:       resp.GetSessionId(),
		out:      make(chan sdk.Event),
		notify:   make(chan struct{}, 1),
		received: make(chan struct{}),
	}
	p.track(s)
	go s.receive()
	go s.deliver()
	return s, nil
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
func (s *Session) Events() <-chan sdk.Event { return s.out }

// receive follows the plugin's Events stream into the queue, subscribing
// again after the last seen seq when the stream breaks while the plugin
// lives.
func (s *Session) receive() {
	defer s.finish()
	var after uint64
	backoff := minResubscribe
	for {
		err := s.follow(&after, &backoff)
		if err == nil {
			return // Exited delivered
		}
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
			s.push(s.exitedEvent(after+1, sdk.ExitPluginExited))
			return
		case <-t.C:
		}
		s.p.log.Debug("resubscribing to session events", "session", s.id, "after_seq", after, "error", err)
		backoff = min(backoff*2, maxResubscribe)
	}
}

// follow reads one subscription. It returns nil after Exited, else why the
// stream ended.
func (s *Session) follow(after *uint64, backoff *time.Duration) error {
	// Cancelling the stream after Exited is the host's acknowledgement: the
	// plugin holds the stream open until then (it may be about to exit).
	ctx, cancel := context.WithCancel(s.p.ctx)
	defer cancel()
	stream, err := s.p.rpc.Events(ctx, &backendv1.EventsRequest{SessionId: s.id, AfterSeq: *after})
	if err != nil {
		return err
	}
	for {
		pe, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return status.Error(codes.Unavailable, "event stream ended before Exited")
			}
			return err
		}
		*after = pe.GetSeq()
		*backoff = minResubscribe
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
