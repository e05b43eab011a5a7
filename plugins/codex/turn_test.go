package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestTurnsReuseOneAppServer(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	first, c1, _ := runTurn(t, s, rec, "first")
	second, c2, evs := runTurn(t, s, rec, "second")
	if first == second {
		t.Fatalf("two turns share the id %s", first)
	}
	for _, c := range []sdk.TurnCompleted{c1, c2} {
		if c.Status != sdk.StatusCompleted || c.Summary != "handled turn" {
			t.Errorf("turn = %+v, want completed with summary %q", c, "handled turn")
		}
	}
	if n := f.startCount(t); n != 1 {
		t.Errorf("the app-server started %d times for two turns, want once", n)
	}
	if n := len(sdktest.OfKind(evs, sdk.EventSessionReady, "")); n != 1 {
		t.Errorf("%d session_ready events, want 1", n)
	}
}

func TestTurnEventsArriveInOrderWithOneCompletion(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	transcript := filepath.Join(t.TempDir(), "logs", "worker-1_round_1.log")
	id := send(t, s, sdk.Input{Text: "TOOL_CALL=1 DELTAS=3 please", TranscriptPath: transcript}, sdk.DeliveryStarted)
	c, _ := rec.WaitCompleted(t, id)
	evs := rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput })
	sdktest.CheckTurnOrder(t, evs, id, true)

	if c.Status != sdk.StatusCompleted || c.Summary != "handled turn" || c.Error != "" {
		t.Errorf("TurnCompleted = %+v", c)
	}
	if n := len(sdktest.OfKind(evs, sdk.EventTurnCompleted, id)); n != 1 {
		t.Errorf("%d turn_completed for %s, want 1", n, id)
	}
	if got := sdktest.Output(evs, id); got != "xxxhandled turn" {
		t.Errorf("deltas = %q, want %q", got, "xxxhandled turn")
	}
	tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(tools) != 1 {
		t.Fatalf("tool calls:\n%s", sdktest.Dump(evs))
	}
	if tc := tools[0].Tool; tc.Kind != "command" || tc.Name != "echo hi" || tc.Status != "completed" || tc.ExitCode == nil || *tc.ExitCode != 0 {
		t.Errorf("tool call = %+v, want command `echo hi` completed with exit 0", *tc)
	}
	usage := sdktest.OfKind(evs, sdk.EventUsage, id)
	want := sdk.Usage{InputTokens: 10, OutputTokens: 5, TotalTokens: 15}
	if len(usage) != 1 || *usage[0].Usage != want {
		t.Errorf("usage events %s, want one %+v", sdktest.Dump(usage), want)
	}

	b, err := os.ReadFile(transcript)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"[tool command `echo hi`: completed, exit 0]", "xxxhandled turn", "[turn completed]"} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("transcript lacks the line %q:\n%s", line, b)
		}
	}
}

func TestSteerJoinsTheRunningTurn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	transcript := filepath.Join(t.TempDir(), "round.log")
	// The fake sleeps on through the steer: long enough for it to land.
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=1500 work", TranscriptPath: transcript}, sdk.DeliveryStarted)
	rec.WaitKind(t, sdk.EventTurnStarted, id)

	steered := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT: look here", TranscriptPath: filepath.Join(t.TempDir(), "other.log")}, sdk.DeliverySteered)
	if steered != id {
		t.Fatalf("steered into %s, want the running turn %s", steered, id)
	}
	c, _ := rec.WaitCompleted(t, id)
	evs := rec.Events()
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "handled urgent turn" {
		t.Fatalf("turn = %+v with output %q, want completed with the urgent input handled", c, sdktest.Output(evs, id))
	}
	steers := f.params(t, "turn/steer")
	if len(steers) != 1 || steers[0]["expectedTurnId"] != id || steers[0]["threadId"] != "fake-thread-1" {
		t.Fatalf("turn/steer params = %v, want expectedTurnId %s", steers, id)
	}
	b, _ := os.ReadFile(transcript)
	if !strings.Contains(string(b), "[urgent input was steered into this turn]") || !strings.Contains(string(b), "handled urgent turn") {
		t.Errorf("the running turn's transcript lacks the steer:\n%s", b)
	}
}

func TestSteerRacingTheTurnsEndStartsANewTurn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	// LATE_COMPLETE: the fake ends the turn before its last delta but holds
	// turn/completed back until it has refused the steer.
	first := send(t, s, sdk.Input{Text: "LATE_COMPLETE=1"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, first, "handled turn")

	second := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT now"}, sdk.DeliveryStarted)
	if second == first {
		t.Fatalf("the urgent input went to the finished turn %s", first)
	}
	if c, _ := rec.WaitCompleted(t, first); c.Status != sdk.StatusCompleted {
		t.Errorf("first turn = %+v", c)
	}
	c, _ := rec.WaitCompleted(t, second)
	evs := rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput })
	sdktest.CheckTurnOrder(t, evs, first, false)
	sdktest.CheckTurnOrder(t, evs, second, true)
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, second) != "handled urgent turn" {
		t.Fatalf("second turn = %+v, output %q", c, sdktest.Output(evs, second))
	}
}

func TestUrgentInputWithNoTurnStartsOne(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT"}, sdk.DeliveryStarted)
	if c, _ := rec.WaitCompleted(t, id); c.Summary != "handled urgent turn" {
		t.Fatalf("turn = %+v", c)
	}
}

func TestCancelInterruptsTheTurnQuickly(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	if d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel}); err != nil || d.Kind != sdk.DeliveryNoTurn {
		t.Fatalf("cancel with no turn = %+v, %v; want no_turn", d, err)
	}
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted)
	start := time.Now()
	if got := send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled); got != id {
		t.Fatalf("cancelled %s, want %s", got, id)
	}
	c, _ := rec.WaitCompleted(t, id)
	if took := time.Since(start); c.Status != sdk.StatusInterrupted || took > 5*time.Second {
		t.Fatalf("turn = %+v after %v, want interrupted at once", c, took)
	}
	if got := f.params(t, "turn/interrupt"); len(got) != 1 || got[0]["turnId"] != id {
		t.Errorf("turn/interrupt params = %v", got)
	}
	if _, c, _ := runTurn(t, s, rec, "again"); c.Status != sdk.StatusCompleted {
		t.Fatalf("the turn after a cancel = %+v", c)
	}
}

func TestATurnWhileOneRunsIsRefused(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted)
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "another"}); !errors.Is(err, sdk.ErrTurnRunning) {
		t.Fatalf("a second turn = %v, want ErrTurnRunning", err)
	}
	if n := len(f.params(t, "turn/start")); n != 1 {
		t.Errorf("codex got %d turn/start, want 1: the refused turn must not reach it", n)
	}
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	rec.WaitCompleted(t, id)
}

func TestAFailedTurnStartLeavesTheSessionUsable(t *testing.T) {
	t.Parallel()
	t.Run("refused by codex", func(t *testing.T) {
		t.Parallel()
		procs := sdktest.TrackProcesses(t)
		s, rec, _ := open(t, procs, openOpts{})
		_, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "REJECT=1"})
		if err == nil || !strings.Contains(err.Error(), "rejected by the fake") {
			t.Fatalf("Send = %v, want codex's refusal", err)
		}
		if d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel}); err != nil || d.Kind != sdk.DeliveryNoTurn {
			t.Fatalf("cancel after a refused turn = %+v, %v; want no_turn (no phantom turn)", d, err)
		}
		if _, c, _ := runTurn(t, s, rec, "fine"); c.Status != sdk.StatusCompleted {
			t.Fatalf("next turn = %+v", c)
		}
		if n := len(sdktest.OfKind(rec.Events(), sdk.EventTurnStarted, "")); n != 1 {
			t.Errorf("%d turn_started events, want 1 (the refused turn never started)", n)
		}
	})
	t.Run("never answered", func(t *testing.T) {
		t.Parallel()
		procs := sdktest.TrackProcesses(t)
		s, rec, _ := open(t, procs, openOpts{
			options: map[string]string{optRequestTimeout: "300"},
			env:     map[string]string{"FAKE_CODEX_IGNORE": "turn/start"},
		})
		rec.WaitReady(t)
		for range 2 {
			start := time.Now()
			_, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "hello"})
			if err == nil || !strings.Contains(err.Error(), "did not answer") || errors.Is(err, sdk.ErrTurnRunning) {
				t.Fatalf("Send = %v, want a deadline error (not a phantom running turn)", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("turn/start took %v to fail, want about request_timeout_ms", took)
			}
		}
		if ks := sdktest.Kinds(rec.Events()); len(ks) != 2 {
			t.Errorf("events = %v, want only session_ready and awaiting_input", ks)
		}
	})
}

func TestGarbageOutputIsReportedAndTheTurnGoesOn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	_, c, evs := runTurn(t, s, rec, "GARBAGE=1")
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %+v", c)
	}
	errs := sdktest.OfKind(evs, sdk.EventError, "")
	if len(errs) != 1 || errs[0].Error.Code != "invalid_output" || errs[0].Error.Fatal || !strings.Contains(errs[0].Error.Message, "this is not json") {
		t.Fatalf("errors = %s, want one non-fatal invalid_output quoting the line", sdktest.Dump(errs))
	}
}

func TestCodexErrorNotificationIsReported(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id, c, evs := runTurn(t, s, rec, "ERROR=1")
	errs := sdktest.OfKind(evs, sdk.EventError, id)
	if c.Status != sdk.StatusCompleted || len(errs) != 1 || errs[0].Error.Message != "upstream trouble" || errs[0].Error.Fatal || errs[0].Error.Code != "codex_error" {
		t.Fatalf("turn %+v, errors:\n%s", c, sdktest.Dump(errs))
	}
}

func TestAFailedTurnCarriesCodexsError(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	_, c, _ := runTurn(t, s, rec, "FAIL=1")
	if c.Status != sdk.StatusFailed || c.Error != "boom" {
		t.Fatalf("turn = %+v, want failed with codex's message", c)
	}
	if _, c, _ := runTurn(t, s, rec, "next"); c.Status != sdk.StatusCompleted {
		t.Fatalf("turn after a failed one = %+v", c)
	}
}

func TestACrashMidTurnFailsTheTurnAndEndsTheSession(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "TOOL_CALL=1 CRASH=1"}, sdk.DeliveryStarted)
	evs := rec.WaitExited(t)
	n := len(evs)
	if n < 4 {
		t.Fatalf("events:\n%s", sdktest.Dump(evs))
	}
	// The tool call written before the crash is delivered (docs/compatibility.md#d9).
	if tools := sdktest.OfKind(evs, sdk.EventToolCall, id); len(tools) != 1 {
		t.Errorf("the tool call before the crash was lost:\n%s", sdktest.Dump(evs))
	}
	// The fatal error comes first, so a host knows the turn failed because
	// the session is going away.
	fatal, c, exited := evs[n-3], evs[n-2], evs[n-1]
	if fatal.Kind != sdk.EventError || !fatal.Error.Fatal || fatal.Error.Code != "cli_exited" ||
		!strings.Contains(fatal.Error.Message, "crashing on purpose") {
		t.Errorf("want a fatal cli_exited error quoting stderr, got:\n%s", sdktest.Dump(evs[n-3:]))
	}
	if c.Kind != sdk.EventTurnCompleted || c.TurnID != id || c.Completed.Status != sdk.StatusFailed ||
		!strings.Contains(c.Completed.Error, "codex app-server exited: exit status 3") {
		t.Errorf("want the turn failed by the exit, got:\n%s", sdktest.Dump(evs[n-2:]))
	}
	if ex := exited.Exited; ex.Reason != sdk.ExitCLIExited || ex.ExitCode == nil || *ex.ExitCode != 3 {
		t.Errorf("Exited = %+v, want cli_exited with exit code 3", *ex)
	}
	sdktest.CheckTurnOrder(t, evs, id, false)
	assertGone(t, procs)
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Send after the crash = %v, want an error saying codex exited", err)
	}
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Errorf("Close after the crash: %v", err)
	}
}

// Codex answers turn/start before the turn is active: a cancel sent in
// between gets "no active turn to interrupt". The cancel must not be lost
// (the turn would run to its end): it is sent again once turn/started
// arrives. The fake's LATE_START makes that window certain.
func TestACancelBeforeTheTurnIsActiveIsNotLost(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "LATE_START=1 SLEEP_MS=60000"}, sdk.DeliveryStarted)
	if got := send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled); got != id {
		t.Fatalf("cancelled %s, want %s", got, id)
	}
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusInterrupted {
		t.Fatalf("turn = %+v, want interrupted", c)
	}
	if got := f.params(t, "turn/interrupt"); len(got) != 2 {
		t.Errorf("turn/interrupt sent %d times, want twice (refused before turn/started, then sent again): %v", len(got), got)
	}
}

// The same window for a steer: the urgent input joins the turn once it is
// active, instead of waiting for the turn's end to start a new one.
func TestASteerBeforeTheTurnIsActiveJoinsIt(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "LATE_START=1 SLEEP_MS=1500"}, sdk.DeliveryStarted)
	if got := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT: early"}, sdk.DeliverySteered); got != id {
		t.Fatalf("steered into %s, want %s", got, id)
	}
	c, _ := rec.WaitCompleted(t, id)
	if out := sdktest.Output(rec.Events(), id); c.Status != sdk.StatusCompleted || out != "handled urgent turn" {
		t.Fatalf("turn = %+v with output %q, want completed with the urgent input handled", c, out)
	}
	if n := len(f.params(t, "turn/start")); n != 1 {
		t.Errorf("turn/start sent %d times, want once", n)
	}
}

// A turn sent before codex is ready is held, keeps the id Send returned,
// and is the running turn once codex has it: its TurnStarted comes then,
// and urgent input steers into it under codex's id for it.
func TestATurnHeldUntilReadyRunsAndCanBeSteered(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{starting: true})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=1500 work"}, sdk.DeliveryStarted)
	rec.WaitKind(t, sdk.EventTurnStarted, id)
	if got := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT: look here"}, sdk.DeliverySteered); got != id {
		t.Fatalf("steered into %s, want the held turn %s", got, id)
	}
	c, evs := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "handled urgent turn" {
		t.Fatalf("turn = %+v with output %q, want completed with the urgent input handled", c, sdktest.Output(evs, id))
	}
	starts, steers := f.params(t, "turn/start"), f.params(t, "turn/steer")
	if len(starts) != 1 || len(steers) != 1 || steers[0]["expectedTurnId"] == id {
		t.Errorf("turn/start %v, turn/steer %v; want one each, the steer naming codex's id for the turn", starts, steers)
	}
}
