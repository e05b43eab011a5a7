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

type recorder = sdktest.Recorder

const fakePkg = "github.com/tthost/tthost/plugins/acp/internal/fakeagent"

// fakeBinary builds the fake agent (once per test process).
func fakeBinary(t testing.TB) string {
	return sdktest.Build(t, fakePkg, "fake-acp-agent")
}

// fake is one test's view of the fake agent: where it logs and keeps
// sessions.
type fake struct {
	log   string // FAKE_ACP_LOG
	state string // FAKE_ACP_STATE
}

func newFake(t testing.TB) *fake {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	return &fake{log: filepath.Join(dir, "received.jsonl"), state: state}
}

// received is one message the fake logged.
type received struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
	Raw    string          `json:"-"`
}

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
		m.Raw = strings.TrimSpace(string(l))
		out = append(out, m)
	}
	return out
}

// methods lists the methods the fake received, in order.
func (f *fake) methods(t testing.TB) []string {
	var out []string
	for _, m := range f.messages(t) {
		if m.Method != "" {
			out = append(out, m.Method)
		}
	}
	return out
}

// prompts returns the texts of every session/prompt the fake received.
func (f *fake) prompts(t testing.TB) []string {
	var out []string
	for _, m := range f.messages(t) {
		if m.Method != "session/prompt" {
			continue
		}
		var p struct {
			Prompt []struct {
				Text string `json:"text"`
			} `json:"prompt"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil || len(p.Prompt) != 1 {
			t.Fatalf("prompt params %s: %v", m.Params, err)
		}
		out = append(out, p.Prompt[0].Text)
	}
	return out
}

// answers returns the client's answers to the fake's requests.
func (f *fake) answers(t testing.TB) []received {
	var out []received
	for _, m := range f.messages(t) {
		if m.Method == "" {
			out = append(out, m)
		}
	}
	return out
}

func dumpReceived(msgs []received) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Raw + "\n")
	}
	return b.String()
}

// openOpts shape a test session; zero values get working defaults.
type openOpts struct {
	cli      string // default "fake"
	command  string // default: the fake
	env      map[string]string
	options  map[string]string
	resumeID string
	workdir  string
	tweak    func(*session)
	starting bool // do not wait for SessionReady
	fake     *fake
}

// open opens a session on the fake agent whose processes carry procs'
// marker, and closes it immediately at cleanup.
func open(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder, *fake) {
	t.Helper()
	f := o.fake
	if f == nil {
		f = newFake(t)
	}
	if o.workdir == "" {
		o.workdir = t.TempDir()
	}
	cfg := sdk.SessionConfig{
		CLIName:   o.cli,
		Command:   o.command,
		Workdir:   o.workdir,
		ResumeID:  o.resumeID,
		Options:   o.options,
		AgentName: "worker-1",
		Env: map[string]string{
			sdktest.MarkerEnv: procs.Marker(),
			"GORACE":          "atexit_sleep_ms=0",
			"FAKE_ACP_LOG":    f.log,
			"FAKE_ACP_STATE":  f.state,
		},
	}
	maps.Copy(cfg.Env, o.env)
	if cfg.CLIName == "" {
		cfg.CLIName = "fake"
	}
	if cfg.Command == "" {
		cfg.Command = fakeBinary(t)
	}
	st, err := validate(cfg)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	rec := sdktest.NewRecorder(t)
	s := openSession(st, rec, o.tweak)
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
func send(t testing.TB, s sdk.Session, in sdk.Input, want sdk.DeliveryKind) sdk.Delivery {
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
	return d
}

// runTurn runs one turn to its end.
func runTurn(t testing.TB, s sdk.Session, rec *recorder, text string) (string, sdk.TurnCompleted, []sdk.Event) {
	t.Helper()
	id := send(t, s, sdk.Input{Kind: sdk.InputTurn, Text: text}, sdk.DeliveryStarted).TurnID
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
	if left := procs.WaitGone(5 * time.Second); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left: %s", strings.Join(desc, "; "))
	}
}

// errorsOf returns the codes of the Error events in evs.
func errorsOf(evs []sdk.Event) []string {
	var codes []string
	for _, e := range evs {
		if e.Kind == sdk.EventError {
			codes = append(codes, e.Error.Code)
		}
	}
	return codes
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
