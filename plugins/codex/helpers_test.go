package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// recorder is the SDK's test event sink.
type recorder = sdktest.Recorder

func newRecorder(t testing.TB) *recorder { return sdktest.NewRecorder(t) }

const fakePkg = "github.com/tthost/tthost/plugins/codex/internal/fakeappserver"

// fakeBinary builds the fake app-server (once per test process).
func fakeBinary(t testing.TB) string {
	return sdktest.Build(t, fakePkg, "fake-codex-app-server")
}

// fake is one test's view of the fake app-server: where it logs.
type fake struct {
	dir    string
	log    string // FAKE_CODEX_LOG
	starts string // FAKE_CODEX_STARTS
}

func newFake(t testing.TB) *fake {
	dir := t.TempDir()
	return &fake{dir: dir, log: filepath.Join(dir, "received.jsonl"), starts: filepath.Join(dir, "starts")}
}

// received is one message the fake logged.
type received struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// messages returns what the fake received so far, in order.
func (f *fake) messages(t testing.TB) []received {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []received
	for l := range bytes.Lines(b) {
		var m received
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("fake log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// params returns the params of every request of a method the fake got,
// decoded into maps.
func (f *fake) params(t testing.TB, method string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range f.messages(t) {
		if m.Method == method {
			var p map[string]any
			if err := json.Unmarshal(m.Params, &p); err != nil {
				t.Fatalf("%s params %s: %v", method, m.Params, err)
			}
			out = append(out, p)
		}
	}
	return out
}

// answers returns the fake's log entries that answer its server requests.
func (f *fake) answers(t testing.TB) []received {
	t.Helper()
	var out []received
	for _, m := range f.messages(t) {
		if m.Method == "" {
			out = append(out, m)
		}
	}
	return out
}

func (f *fake) startCount(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(f.starts)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "start\n")
}

// openOpts shape a test session; zero values get working defaults.
type openOpts struct {
	cli      string // default codex
	command  string // default: the fake
	env      map[string]string
	options  map[string]string
	resumeID string
	logDir   string
	tweak    func(*session)
	// starting: open returns at once, as OpenSession does. Otherwise it
	// waits for SessionReady, so that a Send goes to codex at once instead
	// of being held until codex is ready (plugin.Session's contract).
	starting bool
}

// open opens a session against the fake (or o.command) whose processes
// carry procs' marker, and closes it immediately at cleanup (before procs
// checks for leftovers).
func open(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder, *fake) {
	t.Helper()
	f := newFake(t)
	cfg := sdk.SessionConfig{
		CLIName:   o.cli,
		Command:   o.command,
		Workdir:   t.TempDir(),
		ResumeID:  o.resumeID,
		Options:   o.options,
		AgentID:   "agent-id-1",
		AgentName: "worker-1",
		LogDir:    o.logDir,
		Env: map[string]string{
			sdktest.MarkerEnv:   procs.Marker(),
			"GORACE":            "atexit_sleep_ms=0",
			"FAKE_CODEX_LOG":    f.log,
			"FAKE_CODEX_STARTS": f.starts,
		},
	}
	maps.Copy(cfg.Env, o.env)
	if cfg.CLIName == "" {
		cfg.CLIName = cliCodex
	}
	if cfg.Command == "" {
		cfg.Command = fakeBinary(t)
	}
	rec := newRecorder(t)
	var s *session
	if o.tweak == nil {
		ss, err := newBackend().OpenSession(context.Background(), cfg, rec)
		if err != nil {
			t.Fatalf("OpenSession(%q): %v", cfg.Command, err)
		}
		s = ss.(*session)
	} else {
		st, err := validate(cfg)
		if err != nil {
			t.Fatalf("validate(%q): %v", cfg.Command, err)
		}
		s = openSession(st, rec, o.tweak)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if !o.starting {
		rec.WaitReady(t)
	}
	return s, rec, f
}

// send delivers input and fails the test unless it was delivered as want.
func send(t testing.TB, s sdk.Session, in sdk.Input, want sdk.DeliveryKind) string {
	t.Helper()
	if in.Kind == 0 {
		in.Kind = sdk.InputTurn
	}
	ctx, cancel := context.WithTimeout(context.Background(), sdktest.WaitLong)
	defer cancel()
	d, err := s.Send(ctx, in)
	if err != nil {
		t.Fatalf("Send(%v %.40q): %v", in.Kind, in.Text, err)
	}
	if d.Kind != want || (want != sdk.DeliveryNoTurn && d.TurnID == "") {
		t.Fatalf("Send(%v %.40q) = %+v, want %v with a turn id", in.Kind, in.Text, d, want)
	}
	return d.TurnID
}

// runTurn runs one turn to its end; it returns the turn id, its outcome and
// the events so far.
func runTurn(t testing.TB, s sdk.Session, rec *recorder, text string) (string, sdk.TurnCompleted, []sdk.Event) {
	t.Helper()
	id := send(t, s, sdk.Input{Kind: sdk.InputTurn, Text: text}, sdk.DeliveryStarted)
	c, _ := rec.WaitCompleted(t, id)
	evs := rec.WaitFor(t, "awaiting_input after "+id, func(evs []sdk.Event) bool {
		return evs[len(evs)-1].Kind == sdk.EventAwaitingInput
	})
	sdktest.CheckTurnOrder(t, evs, id, true)
	return id, c, evs
}

// assertGone fails unless every process of the test is gone.
func assertGone(t testing.TB, procs *sdktest.Processes) {
	t.Helper()
	if left := procs.WaitGone(2 * time.Second); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left: %s", strings.Join(desc, "; "))
	}
}
