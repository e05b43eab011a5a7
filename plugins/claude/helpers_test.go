package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

type recorder = sdktest.Recorder

const fakePkg = "github.com/tthost/tthost/plugins/claude/internal/fakeclaude"

// fakeBinary builds the fake claude (once per test process).
func fakeBinary(t testing.TB) string { return sdktest.Build(t, fakePkg, "fakeclaude") }

// openOpts shape a test session; zero values get working defaults.
type openOpts struct {
	command  string // default: the fake
	env      map[string]string
	options  map[string]string
	resumeID string
	workdir  string
	tweak    func(*session)
	starting bool // return at once, without waiting for SessionReady
}

// open opens a session whose processes carry procs' marker and closes it
// immediately at cleanup (before procs checks for leftovers).
func open(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder) {
	t.Helper()
	cfg := sdk.SessionConfig{
		CLIName:   cliClaude,
		Command:   o.command,
		Workdir:   o.workdir,
		ResumeID:  o.resumeID,
		Options:   o.options,
		AgentID:   "agent-id-1",
		AgentName: "worker-1",
		Env:       map[string]string{sdktest.MarkerEnv: procs.Marker(), "GORACE": "atexit_sleep_ms=0"},
	}
	maps.Copy(cfg.Env, o.env)
	if cfg.Workdir == "" {
		cfg.Workdir = t.TempDir()
	}
	if cfg.Command == "" {
		cfg.Command = fakeBinary(t)
	}
	st, err := validate(cfg)
	if err != nil {
		t.Fatalf("validate(%q): %v", cfg.Command, err)
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
	return s, rec
}

// realClaude is a claude command and its offline environment.
type realClaude struct {
	mock *claudetest.MockAnthropic
	home string
	cmd  string
	env  map[string]string
}

func newRealClaude(t testing.TB, script claudetest.Script) *realClaude {
	t.Helper()
	mock := claudetest.NewMockAnthropic(t, script)
	home := claudetest.NewHome(t)
	return &realClaude{mock: mock, home: home, cmd: claudetest.Binary(t) + " --print --dangerously-skip-permissions",
		env: claudetest.EnvMap(home, mock)}
}

func (c *realClaude) open(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder) {
	t.Helper()
	o.command = c.cmd
	env := maps.Clone(c.env)
	maps.Copy(env, o.env)
	o.env = env
	return open(t, procs, o)
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

// runTurn runs one turn to its end; it returns the turn id, its outcome
// and the events so far.
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

// errorsOf returns the codes of the Error events of a turn ("" for the
// session's own).
func errorsOf(evs []sdk.Event, turnID string) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == sdk.EventError && e.TurnID == turnID {
			out = append(out, e.Error.Code)
		}
	}
	return out
}

// pidOf is the current claude's pid.
func pidOf(s *session) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// assertGone fails unless every process of the test is gone.
func assertGone(t testing.TB, procs *sdktest.Processes) {
	t.Helper()
	if left := procs.WaitGone(3 * time.Second); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left: %s", strings.Join(desc, "; "))
	}
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sdktest.WaitLong)
	t.Cleanup(cancel)
	return ctx
}
