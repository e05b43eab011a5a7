package main

import (
	"context"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// checkClosed checks the end of a closed session's events: exactly one
// Exited, last, with reason closed; a turn that ran ends with one
// TurnCompleted of the wanted status right before it (a closing session
// awaits no input).
func checkClosed(t *testing.T, evs []sdk.Event, turnID string, status sdk.TurnStatus) {
	t.Helper()
	last := evs[len(evs)-1]
	if n := len(sdktest.OfKind(evs, sdk.EventExited, "")); n != 1 || last.Kind != sdk.EventExited || last.Exited.Reason != sdk.ExitClosed {
		t.Fatalf("want exactly one exited (reason closed), last:\n%s", sdktest.Dump(evs))
	}
	if errs := sdktest.OfKind(evs, sdk.EventError, ""); len(errs) > 0 {
		t.Errorf("a close reported errors:\n%s", sdktest.Dump(errs))
	}
	if turnID == "" {
		return
	}
	sdktest.CheckTurnOrder(t, evs, turnID, false)
	prev := evs[len(evs)-2]
	if prev.Kind != sdk.EventTurnCompleted || prev.TurnID != turnID || prev.Completed.Status != status {
		t.Fatalf("want turn_completed %s of %s right before exited:\n%s", status, turnID, sdktest.Dump(evs))
	}
}

func TestCloseAnIdleSession(t *testing.T) {
	t.Parallel()
	for name, mode := range map[string]sdk.CloseMode{"graceful": sdk.CloseGraceful, "immediate": sdk.CloseImmediate} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec, _ := open(t, procs, openOpts{})
			rec.WaitReady(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for range 3 {
				if err := s.Close(ctx, mode); err != nil {
					t.Fatal(err)
				}
			}
			evs := rec.Events()
			checkClosed(t, evs, "", "")
			if ex := evs[len(evs)-1].Exited; mode == sdk.CloseGraceful && (ex.ExitCode == nil || *ex.ExitCode != 0) {
				t.Errorf("a graceful close ended codex with %+v, want exit status 0 (stdin closed)", *ex)
			}
			if left := procs.Alive(); len(left) > 0 {
				t.Fatalf("processes alive after Close returned: %v", left)
			}
		})
	}
}

func TestCloseImmediateInterruptsTheRunningTurn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted)
	start := time.Now()
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("an immediate close took %v", took)
	}
	checkClosed(t, rec.Events(), id, sdk.StatusInterrupted)
	if got := f.params(t, "turn/interrupt"); len(got) != 1 {
		t.Errorf("turn/interrupt sent %d times, want once", len(got))
	}
	if left := procs.Alive(); len(left) > 0 {
		t.Fatalf("processes alive after Close returned: %v", left)
	}
}

func TestCloseGracefulLetsTheTurnFinish(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=300"}, sdk.DeliveryStarted)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx, sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()
	checkClosed(t, evs, id, sdk.StatusCompleted)
	if sdktest.Output(evs, id) != "handled turn" {
		t.Errorf("output = %q", sdktest.Output(evs, id))
	}
	if left := procs.Alive(); len(left) > 0 {
		t.Fatalf("processes alive after Close returned: %v", left)
	}
}

func TestCloseGracefulInterruptsATurnThatOutlastsItsDeadline(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx, sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("close took %v past a 300ms deadline", took)
	}
	checkClosed(t, rec.Events(), id, sdk.StatusInterrupted)
	if left := procs.Alive(); len(left) > 0 {
		t.Fatalf("processes alive after Close returned: %v", left)
	}
}

func TestAnImmediateCloseEscalatesAGracefulOne(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "SLEEP_MS=60000"}, sdk.DeliveryStarted)
	graceful := make(chan error, 1)
	go func() { graceful <- s.Close(context.Background(), sdk.CloseGraceful) }()
	// Graceful close without a deadline waits for the turn; once it has
	// begun (no more input is taken), an immediate close must end it.
	select {
	case <-s.closeBegun:
	case <-time.After(sdktest.WaitLong):
		t.Fatal("the graceful close did not begin")
	}
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-graceful:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(sdktest.WaitLong):
		t.Fatal("the graceful close did not return after the immediate one")
	}
	checkClosed(t, rec.Events(), id, sdk.StatusInterrupted)
}

func TestCloseDuringStartup(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	// initialize is never answered: Close must not wait for it.
	s, rec, _ := open(t, procs, openOpts{env: map[string]string{"FAKE_CODEX_IGNORE": "initialize"}, starting: true})
	start := time.Now()
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("closing a starting session took %v", took)
	}
	checkClosed(t, rec.Events(), "", "")
	assertGone(t, procs)
}
