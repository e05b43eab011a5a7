package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/tthost/tthost/sdk"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tthost/tthost/sdk/internal/convert"
	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
	"github.com/tthost/tthost/sdk/internal/wire"
)

const (
	// defaultCloseTimeout bounds CloseSession when the host gives no grace.
	defaultCloseTimeout = 10 * time.Second
	// closedRetention is how long a closed session's events stay readable,
	// so that a host subscribing late still receives everything up to
	// Exited; maxClosedRetained caps the memory this takes.
	closedRetention   = 2 * time.Minute
	maxClosedRetained = 256
	// streamBatch is how many events an Events stream copies per lock.
	streamBatch = 256
	// exitAckTimeout bounds how long an Events stream stays open after
	// Exited, waiting for the host to close it (see Events).
	exitAckTimeout = time.Second
)

// server implements the backend service over a Backend: it keeps the
// session table, numbers and streams events, and maps errors to codes.
type server struct {
	backendv1.UnimplementedBackendServer

	backend sdk.Backend
	log     hclog.Logger
	// attach is the attached/detached state when the plugin serves with a
	// reattach window, nil without one (a lost host then has its sessions'
	// turns cancelled: see hostLost).
	attach *attachment

	mu          sync.Mutex
	sessions    map[string]*openSession
	closed      map[string]*eventLog // retired sessions, kept for late subscribers
	closedOrder []string
	stopping    bool
	stopOnce    sync.Once
	streams     int           // active Events handlers
	idle        chan struct{} // closed when streams drops to 0, if someone waits
}

type openSession struct {
	id     string
	impl   sdk.Session
	events *eventLog
	// closing is the running or successful Close (under server.mu): one
	// caller runs the backend's Close, concurrent callers wait for it.
	closing *closeAttempt
	// subscribers counts the Events streams reading the session and lost
	// runs when the last one broke with nobody reading since (under
	// server.mu; see hostLost).
	subscribers int
	lost        *time.Timer
}

type closeAttempt struct {
	done chan struct{}
	err  error
}

func newServer(b sdk.Backend, log hclog.Logger) *server {
	return &server{
		backend:  b,
		log:      log,
		sessions: map[string]*openSession{},
		closed:   map[string]*eventLog{},
	}
}

// versionedServer is the server as one protocol version serves it: all
// versions share the sessions, and Describe reports the version in use.
type versionedServer struct {
	*server
	protocol int
}

func (s versionedServer) Describe(ctx context.Context, req *backendv1.DescribeRequest) (*backendv1.DescribeResponse, error) {
	s.log.Debug("describe", "host_version", req.GetHostVersion(), "protocol", s.protocol)
	if s.attach != nil {
		s.attach.hostSeen("describe")
	}
	d, err := s.backend.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	d.SDKVersion = sdk.Version
	d.ProtocolVersion = s.protocol
	return convert.DescriptionToProto(d), nil
}

func (s *server) OpenSession(ctx context.Context, req *backendv1.OpenSessionRequest) (*backendv1.OpenSessionResponse, error) {
	if s.attach != nil {
		s.attach.hostSeen("open session")
	}
	if s.isStopping() {
		return nil, toStatus(sdk.ErrShuttingDown)
	}
	id := newSessionID()
	events := newEventLog(id)
	impl, err := s.backend.OpenSession(ctx, convert.SessionConfigFromProto(req), events)
	if err != nil {
		return nil, toStatus(err)
	}
	if impl == nil {
		return nil, status.Error(codes.Internal, "backend returned no session and no error")
	}
	sess := &openSession{id: id, impl: impl, events: events}
	s.mu.Lock()
	stopping := s.stopping
	if !stopping {
		s.sessions[id] = sess
	}
	s.mu.Unlock()
	if stopping {
		// Shutdown began while the backend was opening: it would not see
		// this session, so close it here.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultCloseTimeout)
		defer cancel()
		_ = s.closeSession(ctx, sess, sdk.CloseImmediate)
		return nil, toStatus(sdk.ErrShuttingDown)
	}
	s.log.Debug("session opened", "session", id, "cli", req.GetCliName(), "agent", req.GetAgentName())
	return &backendv1.OpenSessionResponse{SessionId: id}, nil
}

func (s *server) Send(ctx context.Context, req *backendv1.SendRequest) (*backendv1.SendResponse, error) {
	sess := s.lookup(req.GetSessionId())
	if sess == nil {
		return nil, toStatus(fmt.Errorf("session %q: %w", req.GetSessionId(), sdk.ErrSessionNotFound))
	}
	in, err := convert.InputFromProto(req.GetInput())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d, err := sess.impl.Send(ctx, in)
	if err != nil {
		return nil, toStatus(err)
	}
	return convert.DeliveryToProto(d), nil
}

func (s *server) Events(req *backendv1.EventsRequest, stream grpc.ServerStreamingServer[backendv1.Event]) error {
	if s.attach != nil {
		s.attach.hostSeen("events")
	}
	events := s.eventsOf(req.GetSessionId())
	if events == nil {
		return toStatus(fmt.Errorf("session %q: %w", req.GetSessionId(), sdk.ErrSessionNotFound))
	}
	s.streamStarted()
	defer s.streamEnded()
	sess := s.lookup(req.GetSessionId())
	broken := true // until the stream ends after Exited
	if s.attach != nil {
		s.attach.streamOpened()
		defer func() { s.attach.streamClosed(broken) }()
	}
	if sess != nil {
		s.subscribe(sess)
		defer func() { s.unsubscribe(sess, broken) }()
	}

	ctx := stream.Context()
	after := req.GetAfterSeq()
	// With allow_gap, a subscriber that is behind the history (it was away
	// while the session emitted more than historySize events) resumes at
	// the oldest event still buffered; it sees the gap in the seqs.
	allowGap := req.GetAllowGap()
	for {
		evs, wake, done, err := events.sinceGap(after, streamBatch, allowGap)
		if err != nil {
			return status.Errorf(codes.OutOfRange, "session %q, after_seq %d: %v", req.GetSessionId(), after, err)
		}
		for _, e := range evs {
			if err := stream.Send(convert.EventToProto(e)); err != nil {
				return err
			}
			after = e.Seq
			if e.Kind == sdk.EventExited {
				// Hold the stream until the host, having read Exited,
				// closes it: returning at once would let a plugin that is
				// about to exit tear the connection down before the event
				// left the transport.
				t := time.NewTimer(exitAckTimeout)
				defer t.Stop()
				broken = false
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				return nil
			}
		}
		if len(evs) > 0 {
			continue
		}
		if done {
			broken = false
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// subscribe counts a reader of the session's events; a reader arriving in
// time stops a pending hostLost.
func (s *server) subscribe(sess *openSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.subscribers++
	if sess.lost != nil {
		sess.lost.Stop()
		sess.lost = nil
	}
}

// unsubscribe ends a reader. When the last reader's stream broke (the host
// died, or stopped answering and the connection was dropped by keepalive)
// and no new reader arrives within wire.ResubscribeGrace, hostLost runs.
func (s *server) unsubscribe(sess *openSession, broken bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.subscribers--
	if !broken || sess.subscribers > 0 || sess.closing != nil || s.stopping || sess.lost != nil {
		return
	}
	if s.attach != nil {
		// With a reattach window a lost host does not cancel anything: the
		// plugin detaches (see attachment) and keeps the turn running for
		// the host that reattaches.
		return
	}
	sess.lost = time.AfterFunc(wire.ResubscribeGrace, func() { s.hostLost(sess) })
}

// hostLost cancels the running turn of a session nobody reads any more: a
// host that stopped answering may have lost its worker lease, and another
// worker may be about to run the same messages; they must not run twice
// at once. The session itself stays open for a host that comes back. A
// backend that cannot cancel has the session closed instead.
func (s *server) hostLost(sess *openSession) {
	s.mu.Lock()
	sess.lost = nil
	gone := sess.subscribers > 0 || sess.closing != nil || s.stopping || s.sessions[sess.id] != sess
	s.mu.Unlock()
	if gone {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultCloseTimeout)
	defer cancel()
	d, err := sess.impl.Send(ctx, sdk.Input{Kind: sdk.InputCancel})
	if err == nil {
		if d.Kind != sdk.DeliveryNoTurn {
			s.log.Warn("the host stopped reading the session's events: cancelled its running turn", "session", sess.id)
		}
		return
	}
	s.log.Warn("the host stopped reading the session's events and the turn cannot be cancelled: closing the session",
		"session", sess.id, "error", err)
	_ = s.closeSession(ctx, sess, sdk.CloseImmediate)
}

func (s *server) CloseSession(ctx context.Context, req *backendv1.CloseSessionRequest) (*backendv1.CloseSessionResponse, error) {
	sess := s.lookup(req.GetSessionId())
	if sess == nil {
		return &backendv1.CloseSessionResponse{}, nil // closing twice succeeds
	}
	timeout := defaultCloseTimeout
	if g := req.GetGraceMs(); g > 0 {
		timeout = time.Duration(g) * time.Millisecond
	}
	// The close runs to its end even if the host stops waiting: a session
	// half-closed by a cancelled RPC would leave processes behind.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := s.closeSession(closeCtx, sess, convert.CloseModeFromProto(req.GetMode())); err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.CloseSessionResponse{}, nil
}

// closeSession runs the backend's Close once; concurrent callers wait for
// that one. On success the session gets its Exited event and is retired.
func (s *server) closeSession(ctx context.Context, sess *openSession, mode sdk.CloseMode) error {
	s.mu.Lock()
	a := sess.closing
	first := a == nil
	if first {
		a = &closeAttempt{done: make(chan struct{})}
		sess.closing = a
	}
	s.mu.Unlock()
	if !first {
		select {
		case <-a.done:
			return a.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.err = sess.impl.Close(ctx, mode)
	if a.err != nil {
		s.log.Warn("session close failed", "session", sess.id, "error", a.err)
		s.mu.Lock()
		sess.closing = nil // a later CloseSession may try again
		s.mu.Unlock()
	} else {
		sess.events.ensureExited(sdk.ExitInfo{Reason: sdk.ExitClosed})
		s.retire(sess)
	}
	close(a.done)
	return a.err
}

// shutdown closes every open session immediately (bounded by budget), lets
// the Events streams deliver their Exited events, then calls the backend's
// Shutdowner. New sessions are refused from the start. It runs once;
// concurrent callers (SIGTERM and the host's Shutdown RPC together) wait
// for that run.
func (s *server) shutdown(budget time.Duration) {
	s.stopOnce.Do(func() { s.shutdownOnce(budget, sdk.CloseImmediate) })
}

// shutdownGraceful is shutdown for the end of the reattach window, when no
// host is waiting: each session is closed gracefully first (its running
// turn may finish, bounded by budget), and immediately (another budget)
// when that fails, so that no process a session started is left.
func (s *server) shutdownGraceful(budget time.Duration) {
	s.stopOnce.Do(func() { s.shutdownOnce(budget, sdk.CloseGraceful) })
}

func (s *server) shutdownOnce(budget time.Duration, mode sdk.CloseMode) {
	s.mu.Lock()
	s.stopping = true
	open := make([]*openSession, 0, len(s.sessions))
	for _, sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var wg sync.WaitGroup
	for _, sess := range open {
		wg.Go(func() {
			err := s.closeSession(ctx, sess, mode)
			if err != nil && mode == sdk.CloseGraceful {
				s.log.Warn("graceful close failed before exit: closing the session immediately", "session", sess.id, "error", err)
				ictx, icancel := context.WithTimeout(context.Background(), budget)
				err = s.closeSession(ictx, sess, sdk.CloseImmediate)
				icancel()
			}
			if err != nil {
				s.log.Error("could not close session before exit", "session", sess.id, "error", err)
				sess.events.ensureExited(sdk.ExitInfo{Reason: sdk.ExitPluginExited})
			}
		})
	}
	wg.Wait()
	s.waitStreams(time.Second)

	if sd, ok := s.backend.(sdk.Shutdowner); ok {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		if err := sd.Shutdown(ctx); err != nil {
			s.log.Error("backend shutdown failed", "error", err)
		}
	}
}

func (s *server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// openSessions counts the sessions not yet closed.
func (s *server) openSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *server) lookup(id string) *openSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

func (s *server) eventsOf(id string) *eventLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[id]; ok {
		return sess.events
	}
	return s.closed[id]
}

// retire moves a closed session's events to the retention table.
func (s *server) retire(sess *openSession) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	last := len(s.sessions) == 0 && !s.stopping
	s.closed[sess.id] = sess.events
	s.closedOrder = append(s.closedOrder, sess.id)
	for len(s.closedOrder) > maxClosedRetained {
		delete(s.closed, s.closedOrder[0])
		s.closedOrder = s.closedOrder[1:]
	}
	s.mu.Unlock()
	time.AfterFunc(closedRetention, func() { s.forget(sess.id, sess.events) })
	if last && s.attach != nil {
		s.attach.lastSessionClosed()
	}
}

func (s *server) forget(id string, events *eventLog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed[id] != events {
		return // already evicted by the cap
	}
	delete(s.closed, id)
	for i, x := range s.closedOrder {
		if x == id {
			s.closedOrder = append(s.closedOrder[:i], s.closedOrder[i+1:]...)
			break
		}
	}
}

func (s *server) streamStarted() {
	s.mu.Lock()
	s.streams++
	s.mu.Unlock()
}

func (s *server) streamEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams--
	if s.streams == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// waitStreams waits until no Events stream is active, up to timeout.
func (s *server) waitStreams(timeout time.Duration) {
	s.mu.Lock()
	if s.streams == 0 {
		s.mu.Unlock()
		return
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// toStatus maps the SDK's sentinel errors to gRPC codes, keeping the
// message, so that the host client can map them back for errors.Is.
func toStatus(err error) error { return convert.ErrorToStatus(err) }

// newSessionID returns a random id: ids from one plugin run must never be
// confused with those of an earlier run.
func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "s-" + hex.EncodeToString(b[:])
}
