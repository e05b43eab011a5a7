package client_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

const testPlugins = "github.com/tthost/tthost/sdk/internal/testplugins/"

// build compiles one of the test plugins (once per test process).
func build(t testing.TB, name string) string {
	return sdktest.Build(t, testPlugins+name, "tthost-backend-"+name)
}

// logSink keeps what the host logged and mirrors it to the test log while
// the test runs; waitFor lets a test wait for a line without polling.
type logSink struct {
	mu      sync.Mutex
	t       testing.TB
	ended   bool
	buf     bytes.Buffer
	changed chan struct{}
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.ended {
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *logSink) waitFor(substr string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		found := strings.Contains(s.buf.String(), substr)
		changed := s.changed
		s.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// env is one test's host: a logger, a process tracker, launched plugins.
// Cleanups run in reverse: plugins stop, then the tracker checks that no
// process is left, then the logger stops mirroring.
type env struct {
	t     testing.TB
	log   hclog.Logger
	sink  *logSink
	procs *sdktest.Processes
}

func newEnv(t testing.TB) *env {
	sink := &logSink{t: t, changed: make(chan struct{})}
	t.Cleanup(func() {
		sink.mu.Lock()
		sink.ended = true
		sink.mu.Unlock()
	})
	level := hclog.Debug
	if _, ok := t.(*testing.B); ok {
		level = hclog.Warn
	}
	return &env{
		t:     t,
		sink:  sink,
		log:   hclog.New(&hclog.LoggerOptions{Name: "host", Output: sink, Level: level}),
		procs: sdktest.TrackProcesses(t),
	}
}

// quickRaceExit stops a race-enabled plugin (sdktest builds them with
// -race under `go test -race`) from sleeping a second in the race
// runtime's exit handler.
var quickRaceExit = strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")

func (e *env) config(path string) client.Config {
	return client.Config{
		Path:        path,
		Checksum:    sdktest.SHA256File(e.t, path),
		Env:         []string{e.procs.Env(), "GORACE=" + quickRaceExit},
		Logger:      e.log,
		HostVersion: "test",
	}
}

func (e *env) launch(path string) *client.Plugin {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := client.Launch(ctx, e.config(path))
	if err != nil {
		e.t.Fatalf("launch %s: %v", path, err)
	}
	e.t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			e.t.Errorf("stop: %v", err)
		}
	})
	return p
}

func (e *env) open(p *client.Plugin, cfg sdk.SessionConfig) *client.Session {
	e.t.Helper()
	s, err := p.OpenSession(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("open session: %v", err)
	}
	return s
}

// readUntil reads the session's events up to and including the first one
// stop accepts, or until the channel closes.
func readUntil(t testing.TB, s *client.Session, stop func(sdk.Event) bool) []sdk.Event {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	var evs []sdk.Event
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return evs
			}
			evs = append(evs, ev)
			if stop(ev) {
				return evs
			}
		case <-deadline.C:
			t.Fatalf("waited 30s for an event; got %d: %v", len(evs), kinds(evs))
		}
	}
}

func is(kind sdk.EventKind) func(sdk.Event) bool {
	return func(e sdk.Event) bool { return e.Kind == kind }
}

// turnDone stops at the session's AwaitingInput after a TurnCompleted.
func turnDone() func(sdk.Event) bool {
	completed := false
	return func(e sdk.Event) bool {
		if e.Kind == sdk.EventTurnCompleted {
			completed = true
		}
		return completed && e.Kind == sdk.EventAwaitingInput
	}
}

func kinds(evs []sdk.Event) []sdk.EventKind {
	out := make([]sdk.EventKind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

// checkSeqs fails unless the events are numbered first, first+1, ...
func checkSeqs(t testing.TB, evs []sdk.Event, first uint64) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != first+uint64(i) {
			t.Fatalf("event %d (%s) has seq %d, want %d: events must be numbered without gaps", i, e.Kind, e.Seq, first+uint64(i))
		}
	}
}

func deltaText(evs []sdk.Event) (text string, n int) {
	var b strings.Builder
	for _, e := range evs {
		if e.Kind == sdk.EventAssistantDelta {
			b.WriteString(e.Text)
			n++
		}
	}
	return b.String(), n
}
