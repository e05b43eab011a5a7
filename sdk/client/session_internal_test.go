package client

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tthost/tthost/sdk"
	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// These tests inject faults the real plugin cannot be made to produce on
// demand: broken streams, a lost session, a reader that does not read.

// fakeBackend serves scripted Events subscriptions: subscription i sends
// streams[i].events and then fails with streams[i].err.
type fakeBackend struct {
	backendv1.BackendClient // only OpenSession and Events are called

	mu      sync.Mutex
	streams []fakeSub
	afters  []uint64 // after_seq of each subscription
	gaps    []bool   // allow_gap of each subscription
	drained chan struct{}
}

type fakeSub struct {
	events []*backendv1.Event
	err    error
}

func (f *fakeBackend) OpenSession(context.Context, *backendv1.OpenSessionRequest, ...grpc.CallOption) (*backendv1.OpenSessionResponse, error) {
	return &backendv1.OpenSessionResponse{SessionId: "s-1"}, nil
}

func (f *fakeBackend) Events(ctx context.Context, in *backendv1.EventsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[backendv1.Event], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afters = append(f.afters, in.GetAfterSeq())
	f.gaps = append(f.gaps, in.GetAllowGap())
	if len(f.streams) == 0 {
		// Nothing scripted: block like a quiet plugin until cancelled.
		return &fakeStream{ctx: ctx, block: true}, nil
	}
	sub := f.streams[0]
	f.streams = f.streams[1:]
	return &fakeStream{ctx: ctx, events: sub.events, err: sub.err, drained: f.drainedIfLast()}, nil
}

func (f *fakeBackend) drainedIfLast() chan struct{} {
	if len(f.streams) == 0 {
		return f.drained
	}
	return nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx     context.Context
	events  []*backendv1.Event
	err     error
	block   bool
	drained chan struct{}
}

// Recv hands out the scripted events, then the scripted error; drained is
// closed once the last scripted event has been taken.
func (s *fakeStream) Recv() (*backendv1.Event, error) {
	defer func() {
		if len(s.events) == 0 && s.drained != nil {
			close(s.drained)
			s.drained = nil
		}
	}()
	if len(s.events) > 0 {
		e := s.events[0]
		s.events = s.events[1:]
		return e, nil
	}
	if s.block {
		<-s.ctx.Done()
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
	return nil, s.err
}

func pe(seq uint64, kind string) *backendv1.Event {
	e := &backendv1.Event{SessionId: "s-1", Seq: seq, UnixNano: time.Now().UnixNano()}
	switch kind {
	case "delta":
		e.Kind = &backendv1.Event_AssistantDelta{AssistantDelta: &backendv1.AssistantDelta{Text: "x"}}
	case "exited":
		e.Kind = &backendv1.Event_Exited{Exited: &backendv1.Exited{Reason: sdk.ExitClosed}}
	}
	return e
}

// fakePlugin is a Plugin around a fake backend; closing done plays the
// plugin process's death.
func fakePlugin(t *testing.T, f *fakeBackend) (*Plugin, chan struct{}) {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		<-done // like Plugin.reap: streams end once the process is gone
		cancel()
	}()
	f.drained = make(chan struct{})
	return &Plugin{name: "fake", log: hclog.NewNullLogger(), rpc: f, done: done, ctx: ctx, cancel: cancel}, done
}

func collect(t *testing.T, s *Session) []sdk.Event {
	t.Helper()
	var evs []sdk.Event
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-deadline.C:
			t.Fatalf("events channel not closed; got %d events", len(evs))
		}
	}
}

func checkTail(t *testing.T, evs []sdk.Event, n int, lastKind sdk.EventKind, reason string) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: a gap", i, e.Seq)
		}
	}
	last := evs[n-1]
	if last.Kind != lastKind || (reason != "" && last.Exited.Reason != reason) {
		t.Fatalf("last event %s %+v, want %s (%s)", last.Kind, last.Exited, lastKind, reason)
	}
}

func TestEventsResubscribeAfterABrokenStream(t *testing.T) {
	f := &fakeBackend{streams: []fakeSub{
		{events: []*backendv1.Event{pe(1, "delta"), pe(2, "delta")}, err: status.Error(codes.Unavailable, "transport is closing")},
		{events: []*backendv1.Event{pe(3, "delta")}, err: status.Error(codes.Internal, "stream reset")},
		{events: []*backendv1.Event{pe(4, "exited")}},
	}}
	p, done := fakePlugin(t, f)
	defer close(done)
	s, err := p.OpenSession(context.Background(), sdk.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	checkTail(t, collect(t, s), 4, sdk.EventExited, sdk.ExitClosed)
	if want := []uint64{0, 2, 3}; len(f.afters) != 3 || f.afters[1] != want[1] || f.afters[2] != want[2] {
		t.Errorf("subscribed with after_seq %v, want %v", f.afters, want)
	}
}

func TestEventsEndWithPluginExitedWhenThePluginDies(t *testing.T) {
	f := &fakeBackend{streams: []fakeSub{
		{events: []*backendv1.Event{pe(1, "delta")}, err: status.Error(codes.Unavailable, "connection refused")},
	}}
	p, done := fakePlugin(t, f)
	s, err := p.OpenSession(context.Background(), sdk.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	<-f.drained
	close(done)
	checkTail(t, collect(t, s), 2, sdk.EventExited, sdk.ExitPluginExited)
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn}); !errors.Is(err, sdk.ErrPluginExited) {
		t.Errorf("send to a dead plugin: %v, want ErrPluginExited", err)
	}
}

func TestEventsEndClearlyWhenThePluginCannotReplay(t *testing.T) {
	f := &fakeBackend{streams: []fakeSub{
		{events: []*backendv1.Event{pe(1, "delta")}, err: status.Error(codes.Unavailable, "broken")},
		{err: status.Error(codes.OutOfRange, "events after that seq are no longer buffered")},
	}}
	p, done := fakePlugin(t, f)
	defer close(done)
	s, err := p.OpenSession(context.Background(), sdk.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(t, s)
	checkTail(t, evs, 3, sdk.EventExited, ExitEventsLost)
	if e := evs[1]; e.Kind != sdk.EventError || !e.Error.Fatal || e.Error.Code != ExitEventsLost {
		t.Errorf("want a fatal events_lost error before Exited, got %s %+v", e.Kind, e.Error)
	}
}

func TestASlowReaderDoesNotStallTheStream(t *testing.T) {
	const n = 20000
	evs := make([]*backendv1.Event, 0, n+1)
	for i := range n {
		evs = append(evs, pe(uint64(i+1), "delta"))
	}
	evs = append(evs, pe(n+1, "exited"))
	f := &fakeBackend{streams: []fakeSub{{events: evs}}}
	p, done := fakePlugin(t, f)
	defer close(done)
	s, err := p.OpenSession(context.Background(), sdk.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads yet; the stream must still be consumed to its end.
	select {
	case <-f.drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream stalled behind a reader that does not read")
	}
	checkTail(t, collect(t, s), n+1, sdk.EventExited, sdk.ExitClosed)
}

func TestAResumedSessionReportsEventsThePluginDropped(t *testing.T) {
	// The host saw up to seq 5; the plugin's buffer starts at 9.
	f := &fakeBackend{streams: []fakeSub{
		{events: []*backendv1.Event{pe(9, "delta"), pe(10, "delta")}, err: status.Error(codes.Unavailable, "broken")},
		{events: []*backendv1.Event{pe(11, "exited")}},
	}}
	p, done := fakePlugin(t, f)
	defer close(done)
	s, err := p.ResumeSession(context.Background(), "s-1", 5)
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(t, s)
	want := []struct {
		seq  uint64
		kind sdk.EventKind
	}{{8, sdk.EventError}, {9, sdk.EventAssistantDelta}, {10, sdk.EventAssistantDelta}, {11, sdk.EventExited}}
	if len(evs) != len(want) {
		t.Fatalf("got %d events %v, want %v", len(evs), evs, want)
	}
	for i, w := range want {
		if evs[i].Seq != w.seq || evs[i].Kind != w.kind {
			t.Errorf("event %d: %s seq %d, want %s seq %d", i, evs[i].Kind, evs[i].Seq, w.kind, w.seq)
		}
	}
	if e := evs[0].Error; e == nil || e.Code != EventsDropped || e.Fatal || !strings.Contains(e.Message, "3 events") {
		t.Errorf("gap report %+v, want a non-fatal %s saying 3 events were lost", e, EventsDropped)
	}
	// Asked after 4 to learn at once that the session exists; then after
	// the last seq received, both taking what is buffered.
	if len(f.afters) != 2 || f.afters[0] != 4 || f.afters[1] != 10 || !f.gaps[0] || !f.gaps[1] {
		t.Errorf("subscriptions after %v allow_gap %v, want [4 10] [true true]", f.afters, f.gaps)
	}
}

func TestAResumedSessionSkipsTheEventItAlreadySaw(t *testing.T) {
	f := &fakeBackend{streams: []fakeSub{
		{events: []*backendv1.Event{pe(5, "delta"), pe(6, "delta"), pe(7, "exited")}},
	}}
	p, done := fakePlugin(t, f)
	defer close(done)
	s, err := p.ResumeSession(context.Background(), "s-1", 5)
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(t, s)
	if len(evs) != 2 || evs[0].Seq != 6 || evs[1].Seq != 7 || evs[1].Kind != sdk.EventExited {
		t.Errorf("got %v, want seq 6 and Exited 7", evs)
	}
}

func TestResumingAnUnknownSessionFails(t *testing.T) {
	f := &fakeBackend{streams: []fakeSub{{err: status.Error(codes.NotFound, `session "s-9": session not found`)}}}
	p, done := fakePlugin(t, f)
	defer close(done)
	if _, err := p.ResumeSession(context.Background(), "s-9", 3); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("got %v, want ErrSessionNotFound", err)
	}
}

func TestResumingASessionThatEndedClosesAtOnce(t *testing.T) {
	f := &fakeBackend{streams: []fakeSub{{events: []*backendv1.Event{pe(5, "exited")}}}}
	p, done := fakePlugin(t, f)
	defer close(done)
	s, err := p.ResumeSession(context.Background(), "s-1", 5)
	if err != nil {
		t.Fatal(err)
	}
	if evs := collect(t, s); len(evs) != 0 {
		t.Errorf("got %v after the Exited the host saw, want nothing", evs)
	}
}
