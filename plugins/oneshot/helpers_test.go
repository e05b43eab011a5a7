package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// recorder is the SDK's test event sink.
type recorder = sdktest.Recorder

func newRecorder(t testing.TB) *recorder { return sdktest.NewRecorder(t) }

// openOpts shape a test session; zero values get working defaults.
type openOpts struct {
	cli     string
	command string
	workdir string
	env     map[string]string
	options map[string]string
}

// openSession opens a session whose processes carry procs' marker, and
// closes it immediately at cleanup (before procs checks for leftovers).
func openSession(t testing.TB, procs *sdktest.Processes, o openOpts) (*session, *recorder) {
	t.Helper()
	cfg := sdk.SessionConfig{
		CLIName: o.cli,
		Command: o.command,
		Workdir: o.workdir,
		Env:     maps.Clone(o.env),
		Options: o.options,
	}
	if cfg.CLIName == "" {
		cfg.CLIName = "claude"
	}
	if cfg.Workdir == "" {
		cfg.Workdir = t.TempDir()
	}
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env[sdktest.MarkerEnv] = procs.Marker()
	rec := newRecorder(t)
	s, err := newBackend().OpenSession(context.Background(), cfg, rec)
	if err != nil {
		t.Fatalf("OpenSession(%q): %v", o.command, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s.(*session), rec
}

// send starts a turn and fails the test unless it started.
func send(t testing.TB, s sdk.Session, in sdk.Input) string {
	t.Helper()
	if in.Kind == 0 {
		in.Kind = sdk.InputTurn
	}
	d, err := s.Send(context.Background(), in)
	if err != nil {
		t.Fatalf("Send(%v): %v", in.Kind, err)
	}
	if d.Kind != sdk.DeliveryStarted || d.TurnID == "" {
		t.Fatalf("Send(%v) = %+v, want started with a turn id", in.Kind, d)
	}
	return d.TurnID
}

// runTurn runs one turn to its end and returns its outcome and output.
func runTurn(t testing.TB, s sdk.Session, rec *recorder, in sdk.Input) (sdk.TurnCompleted, string) {
	t.Helper()
	id := send(t, s, in)
	c, _ := rec.WaitCompleted(t, id)
	evs := rec.WaitFor(t, "awaiting_input after "+id, func(evs []sdk.Event) bool {
		return evs[len(evs)-1].Kind == sdk.EventAwaitingInput
	})
	sdktest.CheckTurnOrder(t, evs, id, true)
	return c, sdktest.Output(evs, id)
}

// assertGone fails unless every process of the test is gone.
func assertGone(t testing.TB, procs *sdktest.Processes) {
	t.Helper()
	if left := procs.WaitGone(2 * time.Second); len(left) > 0 {
		var desc []string
		for _, pid := range left {
			desc = append(desc, fmt.Sprintf("%d %s", pid, sdktest.Cmdline(pid)))
		}
		t.Fatalf("processes left after the turn: %s", strings.Join(desc, "; "))
	}
}
