package agentloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/backend"
	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/townredis"
	"github.com/tthost/tthost/sdk"
)

// The loop's tests run it in-process on the embedded server (miniredis, as
// `tthost init` starts it without redis-server), through its seams: a fake
// backend session the test drives turn by turn, a fake clock (Options.Now)
// and fake keyspace notifications (Options.Wakeups) the test fires. They
// wait on channels and on the loop's log lines, never on sleeps.

var errBackendDown = errors.New("backend down")

// long bounds every wait: reaching it is a failure, not a timing.
const long = 20 * time.Second

// harness is one agent's loop on a private embedded server.
type harness struct {
	t     *testing.T
	ctx   context.Context
	rdb   *redis.Client
	store *town.Store
	cfg   *config.Config
	agent *town.Agent
	out   *testenv.Buffer
	clock *fakeClock
	be    *fakeBackends
	wake  *fakeWakeups
	loop  *Loop

	cancel context.CancelFunc
	done   chan error // Run's result
}

// harnessOptions adjusts a harness before its loop is built.
type harnessOptions struct {
	caps       []sdk.Capability // default: interrupt
	persistent bool
	config     func(*config.Config)
	state      town.AgentState // the agent's state before the loop starts
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "tal") // short: a unix socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := townredis.StartEmbedded(filepath.Join(dir, "r.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(dir, "r.sock")})
	t.Cleanup(func() { rdb.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	store := town.New(rdb, "demo")
	a, err := store.CreateAgent(ctx, town.AgentSpec{Name: "worker", CLI: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	if o.state != "" {
		if err := store.SetAgentState(ctx, a.ID, o.state); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.New("demo")
	cfg.Agent.IdleTimeoutSecs = 300
	// No safety poll or heartbeat within a test: every wake-up is the
	// test's (a notification it fires), so a missed one fails the test
	// instead of being covered by a poll.
	cfg.TTHost.SafetyPollSecs = 3600
	cfg.TTHost.HeartbeatSecs = 3600
	if o.config != nil {
		o.config(cfg)
	}
	caps := o.caps
	if caps == nil {
		caps = []sdk.Capability{sdk.CapInterrupt}
	}
	h := &harness{
		t: t, ctx: ctx, rdb: rdb, store: store, cfg: cfg, agent: a,
		out:   &testenv.Buffer{},
		clock: &fakeClock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)},
		be: &fakeBackends{
			choice: backend.Choice{Backend: "fake", Instance: "fake", Persistent: o.persistent, Reason: "test backend",
				CLI: sdk.CLI{Name: "fake", Capabilities: caps}},
			sessions: make(chan *fakeSession, 8),
		},
		wake: &fakeWakeups{c: make(chan struct{}), quit: make(chan struct{})},
		done: make(chan error, 1),
	}
	t.Cleanup(func() { close(h.wake.quit) })
	h.loop, err = New(Options{
		TownDir: dir, Config: cfg, Store: store, Backends: h.be,
		Name: a.Name, ID: a.ID, MaxRounds: 100,
		Out: h.out, Now: h.clock.Now, Wakeups: h.wake,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs the loop; the test ends it with stop (or it is cancelled at
// cleanup).
func (h *harness) start() {
	rctx, cancel := context.WithCancel(h.ctx)
	h.cancel = cancel
	go func() { h.done <- h.loop.Run(rctx) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(long):
			h.t.Errorf("the loop did not end at cleanup; output:\n%s", h.out.String())
		}
	})
}

// exited waits for Run to return and returns its error.
func (h *harness) exited() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // cleanup reads it again
		return err
	case <-time.After(long):
		h.t.Fatalf("the loop did not end; output:\n%s", h.out.String())
		return nil
	}
}

// stop is `tthost stop` on an idle agent: the loop must end cleanly.
func (h *harness) stop() {
	h.t.Helper()
	h.must(h.store.RequestStop(h.ctx, h.agent.ID))
	h.wake.wake()
	if err := h.exited(); err != nil {
		h.t.Fatalf("Run after a stop: %v; output:\n%s", err, h.out.String())
	}
	if st := h.state(); st != town.StateStopped {
		h.t.Errorf("state %s after the loop ended, want stopped", st)
	}
}

// interrupt does what `tthost interrupt` does to the agent's record. It
// may run on the loop's goroutine (a hook), so it reports with Error.
func (h *harness) interrupt() {
	ok, err := h.store.SetAgentStateUnless(h.ctx, h.agent.ID, town.StatePaused,
		town.StateStopped, town.StateError, town.StateCold)
	if err == nil && !ok {
		err = errors.New("the agent was already stopped")
	}
	if err == nil {
		err = h.store.Wake(h.ctx, h.agent.ID)
	}
	if err != nil {
		h.t.Errorf("interrupt: %v", err)
	}
}

// resume does what `tthost resume` does.
func (h *harness) resume() {
	h.t.Helper()
	ok, err := h.store.SetAgentStateUnless(h.ctx, h.agent.ID, town.StateIdle,
		town.StateCold, town.StateStarting, town.StateIdle, town.StateWorking,
		town.StateDraining, town.StateStopped, town.StateError)
	h.must(err)
	if !ok {
		h.t.Fatal("resume: the agent was not paused")
	}
	h.must(h.store.Wake(h.ctx, h.agent.ID))
	h.wake.wake()
}

// put puts a task in the agent's inbox without firing the notification.
func (h *harness) put(text string) {
	h.t.Helper()
	h.must(h.store.Send(h.ctx, town.NewTask(town.SupervisorID, h.agent.ID, text)))
}

// send puts a task in the agent's inbox (as `tthost send`) and fires the
// notification.
func (h *harness) send(text string) *town.Message {
	h.t.Helper()
	m := town.NewTask(town.SupervisorID, h.agent.ID, text)
	h.must(h.store.Send(h.ctx, m))
	h.wake.wake()
	return m
}

// settled waits until the loop has gone round at least once after the
// caller's last write and is waiting again: two notifications taken one
// after the other (the first may be taken by a wait that began before the
// write).
func (h *harness) settled() {
	h.t.Helper()
	for range 2 {
		select {
		case <-h.wake.wake():
		case <-time.After(long):
			h.t.Fatalf("the loop did not wait for a notification; output:\n%s", h.out.String())
		}
	}
}

// waitOut waits for text in the loop's log after mark (h.out.Len()).
func (h *harness) waitOut(mark int, text string) {
	h.t.Helper()
	if !h.out.WaitAfter(mark, text, long) {
		h.t.Fatalf("the loop did not say %q; output:\n%s", text, h.out.String())
	}
}

// session waits for the loop to open its backend session.
func (h *harness) session() *fakeSession {
	h.t.Helper()
	select {
	case s := <-h.be.sessions:
		return s
	case <-time.After(long):
		h.t.Fatalf("no session was opened; output:\n%s", h.out.String())
		return nil
	}
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) state() town.AgentState {
	h.t.Helper()
	st, err := h.store.AgentState(h.ctx, h.agent.ID)
	h.must(err)
	return st
}

func (h *harness) field(name string) string {
	h.t.Helper()
	v, err := h.rdb.HGet(h.ctx, h.store.Keys().Agent(h.agent.ID), name).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		h.t.Fatal(err)
	}
	return v
}

// inbox returns the descriptions of the tasks waiting in the inbox.
func (h *harness) inbox() []string {
	h.t.Helper()
	msgs, bad, err := h.store.PeekInbox(h.ctx, h.agent.ID, 1000)
	h.must(err)
	if bad != 0 {
		h.t.Errorf("%d unparseable messages in the inbox", bad)
	}
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.Description)
	}
	return out
}

func (h *harness) inFlight() int64 {
	h.t.Helper()
	n, err := h.store.InFlightLen(h.ctx, h.agent.ID)
	h.must(err)
	return n
}

// event waits for the first event on the agent's stream whose message
// starts with prefix, following the stream (XREAD BLOCK).
func (h *harness) event(prefix string) *town.TownEvent {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, long)
	defer cancel()
	var found *town.TownEvent
	var seen []string
	errFound := errors.New("found")
	err := h.store.FollowEvents(ctx, h.store.Keys().EventsAgent(h.agent.ID), "", func(e town.EventEntry) error {
		if e.Event == nil {
			return nil
		}
		if strings.HasPrefix(e.Event.Message, prefix) {
			found = e.Event
			return errFound
		}
		seen = append(seen, e.Event.Message)
		return nil
	})
	if !errors.Is(err, errFound) {
		h.t.Fatalf("no event %q (%v); events:\n%s", prefix, err, strings.Join(seen, "\n"))
	}
	return found
}

// fakeClock is the loop's clock: it moves only when the test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeWakeups stands for the keyspace-notification watch: the loop sleeps
// on C, and the test fires it.
type fakeWakeups struct {
	c    chan struct{}
	quit chan struct{}
}

func (w *fakeWakeups) C() <-chan struct{} { return w.c }
func (w *fakeWakeups) Active() bool       { return true }
func (w *fakeWakeups) String() string     { return "test notifications" }

// wake fires the notification once: the returned channel is closed when
// a waiting loop (or turn watcher) took it.
func (w *fakeWakeups) wake() <-chan struct{} {
	taken := make(chan struct{})
	go func() {
		select {
		case w.c <- struct{}{}:
			close(taken)
		case <-w.quit:
		}
	}()
	return taken
}

// fakeBackends chooses one backend and opens fake sessions.
type fakeBackends struct {
	choice   backend.Choice
	sessions chan *fakeSession // every session opened
	// sendErr, when set, is given every input a new session receives and
	// fails Send when it returns an error.
	sendErr func(in sdk.Input) error
}

func (b *fakeBackends) Select(ctx context.Context, w backend.Want) (backend.Choice, error) {
	return b.choice, nil
}

func (b *fakeBackends) OpenSession(ctx context.Context, ch backend.Choice, cfg sdk.SessionConfig) (Session, error) {
	s := &fakeSession{inputs: make(chan sent, 16), events: make(chan sdk.Event, 64), closed: make(chan sdk.CloseMode, 1), sendErr: b.sendErr}
	b.sessions <- s
	return s, nil
}

// sent is one input a session received, with the turn it went to.
type sent struct {
	in     sdk.Input
	turnID string
	err    error
}

// fakeSession is a backend session the test drives: it records every
// input and emits what the test tells it to.
type fakeSession struct {
	inputs  chan sent
	sendErr func(sdk.Input) error

	mu       sync.Mutex
	turns    int
	current  string
	events   chan sdk.Event
	isClosed bool
	seq      uint64 // the last event's seq
	closed   chan sdk.CloseMode
	// steerMode is what a steered receipt says.
	steerMode sdk.SteerMode
}

func (s *fakeSession) Send(ctx context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	var d sdk.Delivery
	var err error
	if s.sendErr != nil {
		err = s.sendErr(in)
	}
	if err == nil {
		switch in.Kind {
		case sdk.InputTurn:
			s.turns++
			s.current = fmt.Sprintf("turn-%d", s.turns)
			d = sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: s.current}
		case sdk.InputUrgent:
			d = sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: s.current, SteerMode: s.steerMode}
		case sdk.InputCancel:
			d = sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: s.current}
		}
	}
	s.mu.Unlock()
	s.inputs <- sent{in: in, turnID: d.TurnID, err: err}
	return d, err
}

func (s *fakeSession) Events() <-chan sdk.Event { return s.events }

func (s *fakeSession) ID() string { return "fake-session" }

func (s *fakeSession) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isClosed {
		s.isClosed = true
		close(s.events)
		s.closed <- mode
	}
	return nil
}

// emit sends an event as the backend would, numbered in order (dropped
// once closed).
func (s *fakeSession) emit(ev sdk.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isClosed {
		s.seq++
		ev.Seq = s.seq
		s.events <- ev
	}
}

// end ends a turn with status.
func (s *fakeSession) end(turnID string, status sdk.TurnStatus, errText string) {
	s.emit(sdk.Event{Kind: sdk.EventTurnCompleted, TurnID: turnID,
		Completed: &sdk.TurnCompleted{Status: status, Error: errText, Summary: "done"}})
}

// next waits for the session's next input.
func (h *harness) next(s *fakeSession) sent {
	h.t.Helper()
	select {
	case in := <-s.inputs:
		return in
	case <-time.After(long):
		h.t.Fatalf("the session received nothing; output:\n%s", h.out.String())
		return sent{}
	}
}

// nextTurn waits for a turn and checks that its prompt carries exactly
// texts, in this order, of the texts the test sent (all).
func (h *harness) nextTurn(s *fakeSession, all []string, texts ...string) sent {
	h.t.Helper()
	in := h.next(s)
	if in.in.Kind != sdk.InputTurn {
		h.t.Fatalf("input %s, want a turn", in.in.Kind)
	}
	pos := -1
	for _, want := range texts {
		i := strings.Index(in.in.Text, want)
		if i < 0 || i < pos {
			h.t.Fatalf("the turn's prompt lacks %q or has it out of order (want %q in order):\n%s", want, texts, in.in.Text)
		}
		pos = i
	}
	for _, other := range all {
		if !contains(texts, other) && strings.Contains(in.in.Text, other) {
			h.t.Fatalf("the turn's prompt carries %q, want only %q:\n%s", other, texts, in.in.Text)
		}
	}
	return in
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// quiet checks that the session received nothing so far.
func quiet(t *testing.T, s *fakeSession) {
	t.Helper()
	select {
	case in := <-s.inputs:
		t.Fatalf("the session received %s input %q, want nothing", in.in.Kind, in.in.Text)
	default:
	}
}
