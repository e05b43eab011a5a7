package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tthost/tthost/sdk"
)

func send(t testing.TB, s interface {
	Send(context.Context, sdk.Input) (sdk.Delivery, error)
}, kind sdk.InputKind, text string) sdk.Delivery {
	t.Helper()
	d, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: text})
	if err != nil {
		t.Fatalf("send %v %q: %v", kind, text, err)
	}
	return d
}

func TestEventsArriveInOrderWithoutGaps(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})

	d := send(t, s, sdk.InputTurn, "hello world")
	if d.Kind != sdk.DeliveryStarted || d.TurnID == "" {
		t.Fatalf("delivery %+v, want a started turn", d)
	}
	evs := readUntil(t, s, turnDone())
	checkSeqs(t, evs, 1)

	var shape []sdk.EventKind
	for _, ev := range evs {
		if ev.SessionID != s.ID() {
			t.Errorf("event %d names session %q, want %q", ev.Seq, ev.SessionID, s.ID())
		}
		if ev.Time.IsZero() {
			t.Errorf("event %d has no time", ev.Seq)
		}
		switch ev.Kind {
		case sdk.EventTurnStarted, sdk.EventAssistantDelta, sdk.EventTurnCompleted:
			if ev.TurnID != d.TurnID {
				t.Errorf("%s event %d belongs to turn %q, want %q", ev.Kind, ev.Seq, ev.TurnID, d.TurnID)
			}
		}
		if len(shape) == 0 || shape[len(shape)-1] != ev.Kind {
			shape = append(shape, ev.Kind)
		}
	}
	want := []sdk.EventKind{sdk.EventSessionReady, sdk.EventAwaitingInput, sdk.EventTurnStarted,
		sdk.EventAssistantDelta, sdk.EventTurnCompleted, sdk.EventAwaitingInput}
	if fmt.Sprint(shape) != fmt.Sprint(want) {
		t.Errorf("event kinds %v, want %v", shape, want)
	}
	if text, _ := deltaText(evs); text != "hello world" {
		t.Errorf("echoed %q", text)
	}
	if c := evs[len(evs)-2].Completed; c == nil || c.Status != sdk.StatusCompleted || c.Summary != "echoed 11 bytes" {
		t.Errorf("turn completed with %+v", c)
	}
}

func TestTinyDeltasArriveCoalesced(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})

	text := strings.Repeat("0123456789", 200) // the echo backend emits one delta per byte: 2000
	send(t, s, sdk.InputTurn, text)
	evs := readUntil(t, s, turnDone())
	checkSeqs(t, evs, 1)
	got, n := deltaText(evs)
	if got != text {
		t.Fatalf("coalesced text differs from the 2000 deltas emitted (%d vs %d bytes)", len(got), len(text))
	}
	if n > 20 {
		t.Errorf("2000 tiny deltas arrived as %d events; the SDK must coalesce them", n)
	}
	t.Logf("2000 deltas arrived as %d event(s)", n)
}

func TestEventsEmittedBeforeSubscribingAreKept(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	// The backend emits 500 events inside OpenSession, before the host
	// can have subscribed.
	s := e.open(p, sdk.SessionConfig{CLIName: "echo", Options: map[string]string{"burst": "500"}})
	evs := readUntil(t, s, is(sdk.EventAwaitingInput))
	checkSeqs(t, evs, 1)
	if len(evs) != 502 {
		t.Fatalf("got %d events, want 500 tool calls, SessionReady and AwaitingInput", len(evs))
	}
	for i, ev := range evs[:500] {
		if ev.Kind != sdk.EventToolCall || ev.Tool.ID != fmt.Sprint(i) {
			t.Fatalf("event %d is %s %+v, want tool call %d", i, ev.Kind, ev.Tool, i)
		}
	}
}

func TestSendErrorsMapToSentinels(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	ctx := context.Background()

	echo := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	send(t, echo, sdk.InputTurn, "SLEEP_MS=60000")
	_, err := echo.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "second"})
	if !errors.Is(err, sdk.ErrTurnRunning) || !strings.Contains(err.Error(), "turn t1 has not finished") {
		t.Errorf("a turn during a turn: %v; want ErrTurnRunning with the plugin's message", err)
	}

	// The fallback CLI ("*") declares no steer or interrupt.
	other := e.open(p, sdk.SessionConfig{CLIName: "aider", Command: "aider --yes"})
	send(t, other, sdk.InputTurn, "SLEEP_MS=60000")
	if _, err := other.Send(ctx, sdk.Input{Kind: sdk.InputUrgent, Text: "x"}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("steering without the capability: %v; want ErrUnsupported", err)
	}

	if _, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "aider"}); !errors.Is(err, sdk.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "needs a command") {
		t.Errorf("a session without a command: %v; want ErrInvalidConfig with the plugin's message", err)
	}

	if err := echo.Close(ctx, sdk.CloseImmediate); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := echo.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "late"}); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("sending to a closed session: %v; want ErrSessionNotFound", err)
	}
	if err := echo.Close(ctx, sdk.CloseImmediate); err != nil {
		t.Errorf("closing twice: %v; want success", err)
	}
	evs := readUntil(t, echo, is(sdk.EventExited))
	if last := evs[len(evs)-1]; last.Exited == nil || last.Exited.Reason != sdk.ExitClosed {
		t.Errorf("closed session ended with %+v, want Exited(closed)", last)
	}
	if _, ok := <-echo.Events(); ok {
		t.Error("the events channel stayed open after Exited")
	}
}

func TestCancelInterruptsTheRunningTurn(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})

	started := send(t, s, sdk.InputTurn, "SLEEP_MS=60000")
	readUntil(t, s, is(sdk.EventTurnStarted))
	d := send(t, s, sdk.InputCancel, "")
	if d.Kind != sdk.DeliveryCancelled || d.TurnID != started.TurnID {
		t.Fatalf("cancel delivered as %+v, want cancelled of %s", d, started.TurnID)
	}
	evs := readUntil(t, s, is(sdk.EventTurnCompleted))
	c := evs[len(evs)-1]
	if c.TurnID != started.TurnID || c.Completed.Status != sdk.StatusInterrupted {
		t.Errorf("turn ended with %s %+v, want interrupted", c.TurnID, c.Completed)
	}
	if d := send(t, s, sdk.InputCancel, ""); d.Kind != sdk.DeliveryNoTurn {
		t.Errorf("a cancel without a turn was delivered as %v", d.Kind)
	}
}

func TestUrgentInputSteersTheRunningTurn(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})

	started := send(t, s, sdk.InputTurn, "SLEEP_MS=60000")
	d := send(t, s, sdk.InputUrgent, "look at the failing test")
	if d.Kind != sdk.DeliverySteered || d.TurnID != started.TurnID {
		t.Fatalf("urgent input delivered as %+v, want steered into %s", d, started.TurnID)
	}
	evs := readUntil(t, s, is(sdk.EventAssistantDelta))
	if last := evs[len(evs)-1]; last.Text != "[steer] look at the failing test" || last.TurnID != started.TurnID {
		t.Errorf("steered text arrived as %+v", last)
	}
}

func TestConcurrentSessionsStayIsolated(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	const n = 4
	var wg sync.WaitGroup
	for i := range n {
		s := e.open(p, sdk.SessionConfig{CLIName: "echo", AgentName: fmt.Sprint("agent-", i)})
		wg.Go(func() {
			for round := range 3 {
				text := strings.Repeat(fmt.Sprintf("<session %d round %d>", i, round), 50)
				if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: text}); err != nil {
					t.Errorf("session %d: %v", i, err)
					return
				}
				evs := readUntil(t, s, turnDone())
				for _, ev := range evs {
					if ev.SessionID != s.ID() {
						t.Errorf("session %d received an event of %s", i, ev.SessionID)
					}
				}
				if got, _ := deltaText(evs); got != text {
					t.Errorf("session %d round %d echoed %.60q…, want its own text", i, round, got)
				}
			}
		})
	}
	wg.Wait()
}
