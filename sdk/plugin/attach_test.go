package plugin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tthost/tthost/sdk"
	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// waitLimit bounds every wait for an event in these tests; reaching it is
// a failure, never the expected path.
const waitLimit = 10 * time.Second

// recordingBackend opens recordingSessions and remembers them.
type recordingBackend struct {
	failGraceful bool // sessions' graceful Close fails
	mu           sync.Mutex
	sessions     []*recordingSession
	shutdowns    atomic.Int32
}

func (b *recordingBackend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{Name: "rec", Version: "0.0.1", CLIs: []sdk.CLI{{Name: "rec"}}}, nil
}

func (b *recordingBackend) OpenSession(_ context.Context, _ sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	s := &recordingSession{events: events, failGraceful: b.failGraceful, cancels: make(chan struct{}, 16)}
	b.mu.Lock()
	b.sessions = append(b.sessions, s)
	b.mu.Unlock()
	return s, nil
}

func (b *recordingBackend) Shutdown(context.Context) error {
	b.shutdowns.Add(1)
	return nil
}

func (b *recordingBackend) session(t *testing.T, i int) *recordingSession {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if i >= len(b.sessions) {
		t.Fatalf("session %d was never opened", i)
	}
	return b.sessions[i]
}

// recordingSession records the cancels and the close modes it gets.
type recordingSession struct {
	events       sdk.EventSink
	failGraceful bool
	cancels      chan struct{}
	mu           sync.Mutex
	modes        []sdk.CloseMode
}

func (s *recordingSession) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	if in.Kind == sdk.InputCancel {
		s.cancels <- struct{}{}
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: "t1"}, nil
	}
	return sdk.Delivery{TurnID: "t1"}, nil
}

func (s *recordingSession) Close(_ context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.modes = append(s.modes, mode)
	if mode == sdk.CloseGraceful && s.failGraceful {
		return errors.New("the CLI did not finish in time")
	}
	return nil
}

func (s *recordingSession) closeModes() []sdk.CloseMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sdk.CloseMode(nil), s.modes...)
}

func (s *recordingSession) cancelCount() int { return len(s.cancels) }

// testAttach serves b with a reattach window; states receives the
// attachment's state changes.
type testAttach struct {
	srv    *server
	states chan string
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newTestAttach(t *testing.T, b sdk.Backend, window, grace time.Duration) *testAttach {
	t.Helper()
	buf := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug, JSONFormat: true})
	srv := newServer(b, log)
	states := make(chan string, 64)
	srv.attach = newAttachment(window, log, nil)
	srv.attach.grace = grace
	srv.attach.notify = func(s string) { states <- s }
	t.Cleanup(func() { srv.attach.stop() })
	return &testAttach{srv: srv, states: states, logBuf: buf}
}

// waitState waits for the attachment to report want.
func (ta *testAttach) waitState(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-ta.states:
		if got != want {
			t.Fatalf("attachment became %q, want %q; log:\n%s", got, want, ta.logBuf)
		}
	case <-time.After(waitLimit):
		t.Fatalf("attachment did not become %q; log:\n%s", want, ta.logBuf)
	}
}

// noState asserts that no state change is pending.
func (ta *testAttach) noState(t *testing.T) {
	t.Helper()
	select {
	case got := <-ta.states:
		t.Fatalf("unexpected state change %q", got)
	default:
	}
}

func (ta *testAttach) open(t *testing.T) string {
	t.Helper()
	r, err := ta.srv.OpenSession(context.Background(), &backendv1.OpenSessionRequest{CliName: "rec"})
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	return r.GetSessionId()
}

// fakeParent is a parent pid the serving loop watches.
type fakeParent struct{ pid atomic.Int64 }

func (p *fakeParent) get() int { return int(p.pid.Load()) }

// serveLoop runs waitAndStop over ta's server with a fake parent (4242)
// and returns the parent, the stop channel and the loop's exit status.
func (ta *testAttach) serveLoop(t *testing.T) (*fakeParent, chan os.Signal, <-chan int) {
	t.Helper()
	parent := &fakeParent{}
	parent.pid.Store(4242)
	s := newServing(ta.srv, ta.srv.log)
	s.parent = 4242
	s.getppid = parent.get
	s.parentPoll = time.Millisecond
	s.servedWait = 0
	stop := make(chan os.Signal, 1)
	code := make(chan int, 1)
	go func() { code <- s.waitAndStop(stop) }()
	return parent, stop, code
}

func waitExit(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(waitLimit):
		t.Fatal("the serving loop did not end")
		return -1
	}
}

func stillServing(t *testing.T, code <-chan int) {
	t.Helper()
	select {
	case c := <-code:
		t.Fatalf("the serving loop ended with %d; it should still serve", c)
	default:
	}
}

func TestParentLossDetachesAndKeepsSessions(t *testing.T) {
	b := &recordingBackend{}
	ta := newTestAttach(t, b, time.Hour, time.Hour)
	ta.open(t)
	parent, stop, code := ta.serveLoop(t)

	parent.pid.Store(1) // the host died: the plugin was reparented
	ta.waitState(t, "detached")
	stillServing(t, code)
	if n := ta.srv.openSessions(); n != 1 {
		t.Errorf("%d sessions open after detaching, want 1", n)
	}
	sess := b.session(t, 0)
	if n := sess.cancelCount(); n != 0 {
		t.Errorf("detaching cancelled the running turn %d times", n)
	}
	if m := sess.closeModes(); len(m) != 0 {
		t.Errorf("detaching closed the session: %v", m)
	}
	if !strings.Contains(ta.logBuf.String(), "plugin detached") {
		t.Errorf("no detach log line:\n%s", ta.logBuf)
	}

	// A new host calls Describe: reattached, the window stops.
	if _, err := (versionedServer{server: ta.srv, protocol: 1}).Describe(context.Background(), &backendv1.DescribeRequest{}); err != nil {
		t.Fatalf("describe: %v", err)
	}
	ta.waitState(t, "reattached")
	ta.srv.attach.mu.Lock()
	timer, detached := ta.srv.attach.windowTimer, ta.srv.attach.detached
	ta.srv.attach.mu.Unlock()
	if detached || timer != nil {
		t.Errorf("after Describe: detached=%v, window timer armed=%v; want attached without a timer", detached, timer != nil)
	}
	if !strings.Contains(ta.logBuf.String(), `"host reattached"`) || !strings.Contains(ta.logBuf.String(), "detached_for") {
		t.Errorf("no reattach log line with the time detached:\n%s", ta.logBuf)
	}

	// SIGTERM still stops the plugin as before: sessions closed at once.
	stop <- syscall.SIGTERM
	if c := waitExit(t, code); c != 0 {
		t.Errorf("exit status %d, want 0", c)
	}
	if m := sess.closeModes(); len(m) != 1 || m[0] != sdk.CloseImmediate {
		t.Errorf("SIGTERM closed the session with %v, want [immediate]", m)
	}
}

func TestWindowExpiryClosesSessionsGracefully(t *testing.T) {
	b := &recordingBackend{}
	ta := newTestAttach(t, b, 300*time.Millisecond, time.Hour)
	ta.open(t)
	failing := &recordingBackend{failGraceful: true}
	// A second session whose graceful close fails: the immediate close
	// must follow.
	ta.srv.backend = failing
	ta.open(t)
	parent, _, code := ta.serveLoop(t)

	parent.pid.Store(1)
	ta.waitState(t, "detached")
	ta.waitState(t, "expired")
	if c := waitExit(t, code); c != 0 {
		t.Errorf("exit status %d, want 0", c)
	}
	if m := b.session(t, 0).closeModes(); len(m) != 1 || m[0] != sdk.CloseGraceful {
		t.Errorf("window expiry closed the session with %v, want [graceful]", m)
	}
	if m := failing.session(t, 0).closeModes(); len(m) != 2 || m[0] != sdk.CloseGraceful || m[1] != sdk.CloseImmediate {
		t.Errorf("a session whose graceful close failed got %v, want [graceful immediate]", m)
	}
	if n := ta.srv.openSessions(); n != 0 {
		t.Errorf("%d sessions left open after the window expired", n)
	}
	if failing.shutdowns.Load() != 1 {
		t.Errorf("the backend's Shutdown ran %d times, want 1", failing.shutdowns.Load())
	}
	if !strings.Contains(ta.logBuf.String(), "reattach window expired") {
		t.Errorf("no expiry log line:\n%s", ta.logBuf)
	}
}

func TestParentLossWithoutSessionsStopsAtOnce(t *testing.T) {
	ta := newTestAttach(t, &recordingBackend{}, time.Hour, time.Hour)
	parent, _, code := ta.serveLoop(t)
	parent.pid.Store(1)
	if c := waitExit(t, code); c != 0 {
		t.Errorf("exit status %d, want 0", c)
	}
	ta.noState(t) // it stopped without detaching
	if !strings.Contains(ta.logBuf.String(), "no session is open") {
		t.Errorf("stop reason not logged:\n%s", ta.logBuf)
	}
}

func TestParentLossWithoutWindowStopsAtOnce(t *testing.T) {
	b := &recordingBackend{}
	srv := newServer(b, hclog.NewNullLogger())
	if _, err := srv.OpenSession(context.Background(), &backendv1.OpenSessionRequest{CliName: "rec"}); err != nil {
		t.Fatal(err)
	}
	ta := &testAttach{srv: srv}
	parent, _, code := ta.serveLoop(t)
	parent.pid.Store(1)
	if c := waitExit(t, code); c != 0 {
		t.Errorf("exit status %d, want 0", c)
	}
	if m := b.session(t, 0).closeModes(); len(m) != 1 || m[0] != sdk.CloseImmediate {
		t.Errorf("the host's death closed the session with %v, want [immediate]", m)
	}
}

// fakeStream is an Events stream whose host "breaks" when ctx is
// cancelled.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *backendv1.Event
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Send(e *backendv1.Event) error {
	select {
	case f.sent <- e:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// subscribe runs Events in the background; cancel breaks the stream.
func subscribe(t *testing.T, srv *server, req *backendv1.EventsRequest) (stream *fakeStream, cancel func(), result <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream = &fakeStream{ctx: ctx, sent: make(chan *backendv1.Event, 1024)}
	res := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		res <- srv.Events(req, stream)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return stream, cancel, res
}

func nextEvent(t *testing.T, s *fakeStream) *backendv1.Event {
	t.Helper()
	select {
	case e := <-s.sent:
		return e
	case <-time.After(waitLimit):
		t.Fatal("no event arrived on the stream")
		return nil
	}
}

func TestBrokenStreamsDetachAndReattach(t *testing.T) {
	b := &recordingBackend{}
	ta := newTestAttach(t, b, 300*time.Millisecond, 20*time.Millisecond)
	id := ta.open(t)
	sess := b.session(t, 0)
	sess.events.Emit(sdk.SessionReadyEvent(sdk.SessionReady{}))
	_, _, code := ta.serveLoop(t)

	stream, breakIt, _ := subscribe(t, ta.srv, &backendv1.EventsRequest{SessionId: id})
	nextEvent(t, stream)
	breakIt() // the host froze and keepalive dropped its connection
	ta.waitState(t, "detached")
	stillServing(t, code)
	ta.srv.mu.Lock()
	lost := ta.srv.sessions[id].lost
	ta.srv.mu.Unlock()
	if lost != nil {
		t.Error("with a reattach window the per-session hostLost cancel was armed")
	}
	if n := sess.cancelCount(); n != 0 {
		t.Errorf("the running turn was cancelled %d times", n)
	}

	// A host resubscribes after the last seq it consumed: reattached, and
	// the events emitted meanwhile arrive.
	sess.events.Emit(sdk.AwaitingInputEvent())
	stream2, breakIt2, _ := subscribe(t, ta.srv, &backendv1.EventsRequest{SessionId: id, AfterSeq: 1})
	ta.waitState(t, "reattached")
	if e := nextEvent(t, stream2); e.GetSeq() != 2 {
		t.Errorf("resubscribed stream starts at seq %d, want 2", e.GetSeq())
	}

	// A later loss detaches again with a fresh window, which expires.
	breakIt2()
	ta.waitState(t, "detached")
	ta.waitState(t, "expired")
	if c := waitExit(t, code); c != 0 {
		t.Errorf("exit status %d, want 0", c)
	}
	if m := sess.closeModes(); len(m) != 1 || m[0] != sdk.CloseGraceful {
		t.Errorf("window expiry closed the session with %v, want [graceful]", m)
	}
}

func TestNewStreamWithinGraceKeepsAttached(t *testing.T) {
	b := &recordingBackend{}
	ta := newTestAttach(t, b, time.Hour, time.Hour)
	id := ta.open(t)
	b.session(t, 0).events.Emit(sdk.SessionReadyEvent(sdk.SessionReady{}))
	_, breakIt, res := subscribe(t, ta.srv, &backendv1.EventsRequest{SessionId: id, AfterSeq: 1})
	breakIt()
	<-res
	ta.srv.attach.mu.Lock()
	armed := ta.srv.attach.lost != nil
	ta.srv.attach.mu.Unlock()
	if !armed {
		t.Fatal("a broken last stream did not start the resubscribe grace")
	}
	// The first event on the new stream proves it was counted: Events
	// counts a stream before it sends anything.
	stream, _, _ := subscribe(t, ta.srv, &backendv1.EventsRequest{SessionId: id})
	nextEvent(t, stream)
	ta.srv.attach.mu.Lock()
	streams, armed := ta.srv.attach.streams, ta.srv.attach.lost != nil
	ta.srv.attach.mu.Unlock()
	if streams != 1 || armed {
		t.Errorf("after a new stream within the grace: %d streams, loss timer armed=%v; want 1 and false", streams, armed)
	}
	ta.noState(t)
	if ta.srv.attach.isDetached() {
		t.Error("detached although the host resubscribed")
	}
}

func TestStreamsEndingAfterExitedDoNotDetach(t *testing.T) {
	ta := newTestAttach(t, &recordingBackend{}, time.Hour, time.Hour)
	id := ta.open(t)
	if _, err := ta.srv.CloseSession(context.Background(), &backendv1.CloseSessionRequest{SessionId: id}); err != nil {
		t.Fatal(err)
	}
	stream, breakIt, res := subscribe(t, ta.srv, &backendv1.EventsRequest{SessionId: id})
	if e := nextEvent(t, stream); e.GetExited() == nil {
		t.Fatalf("got %v, want Exited", e)
	}
	breakIt() // the host closes the stream after Exited
	if err := <-res; err != nil {
		t.Fatalf("events: %v", err)
	}
	ta.srv.attach.mu.Lock()
	armed := ta.srv.attach.lost != nil
	ta.srv.attach.mu.Unlock()
	if armed {
		t.Error("a stream that ended after Exited started the loss grace")
	}
}

func TestWithoutWindowHostLossCancelsTheTurn(t *testing.T) {
	b := &recordingBackend{}
	srv := newServer(b, hclog.NewNullLogger())
	r, err := srv.OpenSession(context.Background(), &backendv1.OpenSessionRequest{CliName: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	_, breakIt, res := subscribe(t, srv, &backendv1.EventsRequest{SessionId: r.GetSessionId()})
	breakIt()
	<-res
	// hostLost runs after wire.ResubscribeGrace and sends a cancel.
	select {
	case <-b.session(t, 0).cancels:
	case <-time.After(waitLimit):
		t.Fatal("the lost host's running turn was not cancelled")
	}
}

func TestEventsAllowGap(t *testing.T) {
	b := &recordingBackend{}
	srv := newServer(b, hclog.NewNullLogger())
	r, err := srv.OpenSession(context.Background(), &backendv1.OpenSessionRequest{CliName: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetSessionId()
	srv.lookup(id).events.history = 4
	sink := b.session(t, 0).events
	for range 10 {
		sink.Emit(sdk.AwaitingInputEvent())
	}

	// Without allow_gap: OUT_OF_RANGE, as before.
	_, _, res := subscribe(t, srv, &backendv1.EventsRequest{SessionId: id, AfterSeq: 2})
	if err := <-res; status.Code(err) != codes.OutOfRange {
		t.Errorf("after_seq 2 without allow_gap: %v, want OUT_OF_RANGE", err)
	}
	// With allow_gap: from the oldest buffered event, seq 7.
	stream, _, _ := subscribe(t, srv, &backendv1.EventsRequest{SessionId: id, AfterSeq: 2, AllowGap: true})
	for want := uint64(7); want <= 10; want++ {
		if e := nextEvent(t, stream); e.GetSeq() != want {
			t.Fatalf("allow_gap stream sent seq %d, want %d", e.GetSeq(), want)
		}
	}
	// Beyond the last event: OUT_OF_RANGE even with allow_gap.
	_, _, res = subscribe(t, srv, &backendv1.EventsRequest{SessionId: id, AfterSeq: 11, AllowGap: true})
	if err := <-res; status.Code(err) != codes.OutOfRange {
		t.Errorf("after_seq 11 with allow_gap: %v, want OUT_OF_RANGE", err)
	}
}

func TestSinceGap(t *testing.T) {
	l := testLog(deltaFlushBytes)
	l.history = 3
	for range 5 {
		l.Emit(sdk.AwaitingInputEvent())
	}
	if _, _, _, err := l.since(0, 10); !errors.Is(err, errHistoryGone) {
		t.Errorf("since(0) over a lapped history: %v, want errHistoryGone", err)
	}
	evs, _, _, err := l.sinceGap(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range evs {
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != 3 || seqs[0] != 3 || seqs[2] != 5 {
		t.Errorf("sinceGap(0) returned seqs %v, want [3 4 5]", seqs)
	}
	// Within the history allow_gap changes nothing.
	evs, _, _, err = l.sinceGap(3, 10, true)
	if err != nil || len(evs) != 2 || evs[0].Seq != 4 {
		t.Errorf("sinceGap(3) = %v, %v; want seqs 4 and 5", evs, err)
	}
	if _, _, _, err := l.sinceGap(6, 10, true); !errors.Is(err, errSeqAhead) {
		t.Errorf("sinceGap(6): %v, want errSeqAhead", err)
	}
}

func TestReattachWindowParsing(t *testing.T) {
	buf := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Output: buf, JSONFormat: true})
	cases := []struct {
		value string
		want  time.Duration
		warn  bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"1500", 1500 * time.Millisecond, false},
		{" 20 ", 20 * time.Millisecond, false},
		{"abc", 0, true},
		{"-5", 0, true},
		{"1s", 0, true},
	}
	for _, tc := range cases {
		before := len(buf.String())
		if got := reattachWindow(tc.value, log, sdk.ReattachWindowEnv); got != tc.want {
			t.Errorf("%q: window %v, want %v", tc.value, got, tc.want)
		}
		if warned := len(buf.String()) > before; warned != tc.warn {
			t.Errorf("%q: warned=%v, want %v", tc.value, warned, tc.warn)
		}
	}
}

func TestDetachedLogSwitchesLoggersAlreadyHandedOut(t *testing.T) {
	var stderr syncBuffer
	out := &logOutput{w: &stderr}
	log := newDefaultLogger(out, "info")
	log.Info("before")
	path := filepath.Join(t.TempDir(), "detached.log")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := out.toFile(path); err != nil {
		t.Fatal(err)
	}
	log.Info("after")
	if err := out.toFile(filepath.Join(t.TempDir(), "other.log")); err != nil {
		t.Fatal(err)
	}
	log.Info("still there")

	if s := stderr.String(); !strings.Contains(s, "before") || strings.Contains(s, "after") {
		t.Errorf("stderr got %q; want only the line before the switch", s)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.HasPrefix(s, "earlier\n") || !strings.Contains(s, `"after"`) || !strings.Contains(s, "still there") {
		t.Errorf("detached log holds %q; want the earlier content, then both later lines", s)
	}
}

func TestDetachedLogCreatesPrivateFileAndKeepsStderrOnError(t *testing.T) {
	var stderr syncBuffer
	out := &logOutput{w: &stderr}
	if err := out.toFile(filepath.Join(t.TempDir(), "missing", "dir", "x.log")); err == nil {
		t.Fatal("opening a log in a missing directory succeeded")
	}
	_, _ = out.Write([]byte("kept\n"))
	if stderr.String() != "kept\n" {
		t.Errorf("after a failed switch stderr got %q", stderr.String())
	}
	path := filepath.Join(t.TempDir(), "new.log")
	if err := out.toFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("detached log mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestDetachMovesTheLogBeforeSayingSo(t *testing.T) {
	var stderr syncBuffer
	out := &logOutput{w: &stderr}
	log := newDefaultLogger(out, "info")
	path := filepath.Join(t.TempDir(), "detached.log")
	a := newAttachment(time.Hour, log, func() {
		if err := out.toFile(path); err != nil {
			t.Error(err)
		}
	})
	defer a.stop()
	a.parentGone()
	if !a.isDetached() {
		t.Fatal("parent loss did not detach")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "plugin detached") {
		t.Errorf("the detach line is not in the detached log: %q", b)
	}
	if strings.Contains(stderr.String(), "plugin detached") {
		t.Errorf("the detach line went to the dead stderr: %q", stderr.String())
	}
}

func TestStoppedAttachmentNeverDetaches(t *testing.T) {
	a := newAttachment(time.Hour, hclog.NewNullLogger(), func() { t.Error("a stopping plugin moved its log") })
	a.grace = 0
	a.streamOpened()
	a.stop()
	a.streamClosed(true) // a stream broken by the shutdown itself
	a.parentGone()
	a.mu.Lock()
	detached, lost := a.detached, a.lost
	a.mu.Unlock()
	if detached || lost != nil {
		t.Errorf("after stop: detached=%v, loss timer armed=%v; want neither", detached, lost != nil)
	}
}

func FuzzReattachWindow(f *testing.F) {
	for _, s := range []string{"", "0", "1500", " 7 ", "-1", "1e3", "99999999999999999999", "abc"} {
		f.Add(s)
	}
	log := hclog.NewNullLogger()
	f.Fuzz(func(t *testing.T, value string) {
		w := reattachWindow(value, log, sdk.ReattachWindowEnv)
		if w < 0 {
			t.Errorf("%q: negative window %v", value, w)
		}
		if w%time.Millisecond != 0 {
			t.Errorf("%q: window %v is not whole milliseconds", value, w)
		}
	})
}

func TestOrphanWithoutSessionsDetachesAndExpires(t *testing.T) {
	b := &recordingBackend{}
	ta := newTestAttach(t, b, 200*time.Millisecond, time.Hour)
	id := ta.open(t)
	parent, _, code := ta.serveLoop(t)
	parent.pid.Store(1)
	ta.waitState(t, "detached")
	if _, err := (versionedServer{server: ta.srv, protocol: 1}).Describe(context.Background(), &backendv1.DescribeRequest{}); err != nil {
		t.Fatal(err)
	}
	ta.waitState(t, "reattached")
	// The reattached host closes the last session: nothing would notice
	// that host's loss, so the orphan detaches and the window bounds it.
	if _, err := ta.srv.CloseSession(context.Background(), &backendv1.CloseSessionRequest{SessionId: id}); err != nil {
		t.Fatal(err)
	}
	ta.waitState(t, "detached")
	ta.waitState(t, "expired")
	if c := waitExit(t, code); c != 0 {
		t.Errorf("exit status %d, want 0", c)
	}
}

func TestParentLossAfterAnotherHostReattachedKeepsAttached(t *testing.T) {
	a := newAttachment(time.Hour, hclog.NewNullLogger(), nil)
	defer a.stop()
	a.grace = 0
	states := make(chan string, 8)
	a.notify = func(s string) { states <- s }
	a.streamOpened()
	a.streamClosed(true) // the launching host froze: its stream was dropped
	if s := <-states; s != "detached" {
		t.Fatalf("got %q, want detached", s)
	}
	a.hostSeen("describe") // another host reattached
	if s := <-states; s != "reattached" {
		t.Fatalf("got %q, want reattached", s)
	}
	a.parentGone() // the frozen launching host is killed at last
	if a.isDetached() {
		t.Error("the launching host's death detached a plugin another host is attached to")
	}
}
