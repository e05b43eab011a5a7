package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// checkClosed checks the end of a closed session's events: exactly one
// Exited, last, with reason "closed"; a turn that was running went straight
// from TurnCompleted to Exited (a closing session awaits no input).
func checkClosed(t *testing.T, evs []sdk.Event, turnID string) {
	t.Helper()
	exited := 0
	for _, e := range evs {
		if e.Kind == sdk.EventExited {
			exited++
		}
	}
	last := evs[len(evs)-1]
	if exited != 1 || last.Kind != sdk.EventExited || last.Exited.Reason != sdk.ExitClosed {
		t.Fatalf("want exactly one exited (reason closed), last:\n%s", sdktest.Dump(evs))
	}
	if turnID != "" {
		sdktest.CheckTurnOrder(t, evs, turnID, false)
		if prev := evs[len(evs)-2]; prev.Kind != sdk.EventTurnCompleted || prev.TurnID != turnID {
			t.Fatalf("want turn_completed of %s right before exited:\n%s", turnID, sdktest.Dump(evs))
		}
	}
}

// checkRefusesInput checks that a closed session takes nothing.
func checkRefusesInput(t *testing.T, s sdk.Session) {
	t.Helper()
	for _, kind := range []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent, sdk.InputCancel} {
		if d, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: "x"}); !errors.Is(err, sdk.ErrSessionNotFound) {
			t.Errorf("%v after Close = %+v, %v; want ErrSessionNotFound", kind, d, err)
		}
	}
}

func TestCloseIdleSessionIsIdempotent(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	for _, mode := range []sdk.CloseMode{sdk.CloseGraceful, sdk.CloseImmediate} {
		s, rec := openSession(t, procs, openOpts{command: "cat"})
		for range 3 {
			if err := s.Close(context.Background(), mode); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		checkClosed(t, rec.Events(), "")
		checkRefusesInput(t, s)
	}
}

func TestCloseGracefulWaitsForTheRunningTurn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	// The CLI blocks on a FIFO until the test opens it, so the turn can
	// only end after Close has begun waiting for it.
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	s, rec := openSession(t, procs, openOpts{
		command: `echo ready; read line < "$GATE"; echo "got $line"`,
		env:     map[string]string{"GATE": gate},
	})
	id := send(t, s, sdk.Input{Text: "x"})
	rec.WaitOutput(t, id, "ready")

	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background(), sdk.CloseGraceful) }()
	<-s.closeStarted
	checkRefusesInput(t, s)

	w, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.WriteString("go\n")
	_ = w.Close()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	evs := rec.Events()
	checkClosed(t, evs, id)
	c, _ := rec.WaitCompleted(t, id)
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "ready\ngot go\n" {
		t.Errorf("turn = %s output %q; want it completed on its own", fmtCompleted(c), sdktest.Output(evs, id))
	}
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkClosed(t, rec.Events(), id)
}

func TestCloseStopsTheRunningTurn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mode     sdk.CloseMode
		deadline time.Duration // of Close's context
	}{
		{"immediate close interrupts at once", sdk.CloseImmediate, sdktest.WaitLong},
		{"graceful close interrupts at its deadline", sdk.CloseGraceful, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec := openSession(t, procs, openOpts{command: `trap "" TERM; sleep 30 & sleep 30 & echo ready; wait`})
			id := send(t, s, sdk.Input{Text: "x"})
			rec.WaitOutput(t, id, "ready")

			ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
			defer cancel()
			start := time.Now()
			if err := s.Close(ctx, tt.mode); err != nil {
				t.Fatalf("Close: %v", err)
			}
			limit := time.Second
			if tt.mode == sdk.CloseGraceful {
				limit += tt.deadline
			}
			if took := time.Since(start); took > limit {
				t.Errorf("Close took %v, want under %v", took, limit)
			}
			evs := rec.Events()
			checkClosed(t, evs, id)
			if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusInterrupted {
				t.Errorf("TurnCompleted = %s, want interrupted", fmtCompleted(c))
			}
			checkRefusesInput(t, s)
			assertGone(t, procs)
		})
	}
}

func TestCloseImmediateEscalatesAWaitingGracefulClose(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{command: `echo ready; exec sleep 30`})
	id := send(t, s, sdk.Input{Text: "x"})
	rec.WaitOutput(t, id, "ready")

	graceful := make(chan error, 1)
	go func() { graceful <- s.Close(context.Background(), sdk.CloseGraceful) }()
	<-s.closeStarted
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatalf("immediate Close: %v", err)
	}
	// The immediate close returns only after Exited, so the graceful one
	// has nothing left to wait for.
	checkClosed(t, rec.Events(), id)
	if err := <-graceful; err != nil {
		t.Fatalf("graceful Close: %v", err)
	}
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusInterrupted {
		t.Errorf("TurnCompleted = %s, want interrupted", fmtCompleted(c))
	}
	assertGone(t, procs)
}
