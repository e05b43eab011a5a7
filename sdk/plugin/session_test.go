package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests drive plugin.Session with drivers made of channels: every
// race is staged by holding a hook until the test has done what it wants
// to happen meanwhile, never by sleeping.

// fakeCLI is a driver whose StartTurn hands each turn to the test.
type fakeCLI struct {
	turns   chan *plugin.Turn // one per StartTurn
	texts   chan string       // the text of each StartTurn and Steer
	cancels chan *plugin.Turn
	stops   chan sdk.CloseMode
}

func newFakeCLI() *fakeCLI {
	return &fakeCLI{
		turns:   make(chan *plugin.Turn, 16),
		texts:   make(chan string, 16),
		cancels: make(chan *plugin.Turn, 16),
		stops:   make(chan sdk.CloseMode, 4),
	}
}

func (f *fakeCLI) driver() plugin.Driver {
	return plugin.Driver{
		StartTurn: func(_ context.Context, t *plugin.Turn, text string) error {
			f.texts <- text
			f.turns <- t
			return nil
		},
		Cancel: func(_ context.Context, t *plugin.Turn) error {
			f.cancels <- t
			return nil
		},
		Stop: func(context.Context, sdk.CloseMode) sdk.ExitInfo {
			f.stops <- sdk.CloseGraceful
			return sdk.ExitInfo{ExitCode: sdk.IntPtr(0)}
		},
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(sdktest.WaitLong):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

func send(t *testing.T, s sdk.Session, kind sdk.InputKind, text string) sdk.Delivery {
	t.Helper()
	d, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: text})
	if err != nil {
		t.Fatalf("Send(%v, %q): %v", kind, text, err)
	}
	return d
}

// checkStream checks a whole session's events against the contract: the
// session's first events, one turn at a time, every turn event inside its
// turn, one TurnCompleted per turn, AwaitingInput only when idle, Exited
// last and once.
func checkStream(t *testing.T, evs []sdk.Event) {
	t.Helper()
	fail := func(i int, why string) {
		t.Helper()
		t.Fatalf("event %d: %s:\n%s", i, why, sdktest.Dump(evs))
	}
	ready, running, completed := false, "", map[string]bool{}
	for i, e := range evs {
		switch e.Kind {
		case sdk.EventSessionReady:
			if ready || i != 0 {
				fail(i, "SessionReady must come first, once")
			}
			ready = true
		case sdk.EventTurnStarted:
			if !ready || running != "" || completed[e.TurnID] {
				fail(i, "TurnStarted while not ready, during a turn, or reusing an id")
			}
			running = e.TurnID
		case sdk.EventTurnCompleted:
			if e.TurnID != running {
				fail(i, "TurnCompleted of a turn that is not running")
			}
			completed[e.TurnID], running = true, ""
		case sdk.EventAwaitingInput:
			if running != "" {
				fail(i, "AwaitingInput during a turn")
			}
		case sdk.EventExited:
			if running != "" || i != len(evs)-1 {
				fail(i, "Exited during a turn, or not last")
			}
		default:
			if e.TurnID != "" && e.TurnID != running {
				fail(i, "an event of a turn that is not running")
			}
		}
	}
}

func TestASessionWithoutStartIsReadyAtOnce(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	d.Ready = sdk.SessionReady{RuntimeSessionID: "r1"}
	s := plugin.NewSession(rec, d)
	if ks := sdktest.Kinds(rec.Events()); len(ks) != 2 || ks[0] != sdk.EventSessionReady || ks[1] != sdk.EventAwaitingInput {
		t.Fatalf("events %v, want session_ready, awaiting_input", ks)
	}
	if rec.WaitReady(t).RuntimeSessionID != "r1" {
		t.Error("SessionReady lost Driver.Ready")
	}
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	checkStream(t, rec.Events())
}

func TestATurnRunsAndEndsInOrder(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	s := plugin.NewSession(rec, f.driver())
	transcript := filepath.Join(t.TempDir(), "logs", "round_1.log")
	d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "hello", TranscriptPath: transcript})
	if err != nil || d.Kind != sdk.DeliveryStarted || d.TurnID != "t1" {
		t.Fatalf("Send = %+v, %v; want started t1", d, err)
	}
	tr := recv(t, f.turns, "StartTurn")
	if s.Running() != tr || tr.ID() != "t1" {
		t.Fatalf("Running() = %v, want the turn t1", s.Running())
	}
	// A character split across two writes arrives whole; a stray byte is
	// replaced; the transcript gets the bytes as they came.
	tr.Write([]byte("héllo \xe6\x97"))
	tr.Write([]byte("\xa5 \xff\n"))
	tr.Emit(sdk.ToolCallEvent("", sdk.ToolCall{ID: "1", Kind: "command", Name: "ls", Status: "completed"}))
	tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "done"})
	tr.Output("after the end") // ignored
	evs := rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput && len(evs) > 2 })
	sdktest.CheckTurnOrder(t, evs, "t1", true)
	if out := sdktest.Output(evs, "t1"); out != "héllo 日 \uFFFD\n" {
		t.Errorf("output %q", out)
	}
	if tools := sdktest.OfKind(evs, sdk.EventToolCall, "t1"); len(tools) != 1 {
		t.Errorf("the tool call did not get the turn's id:\n%s", sdktest.Dump(evs))
	}
	if b, err := os.ReadFile(transcript); err != nil || string(b) != "héllo \xe6\x97\xa5 \xff\n" {
		t.Errorf("transcript %q, %v; want the CLI's bytes", b, err)
	}
	if s.Running() != nil {
		t.Error("a turn is still running after its end")
	}
	// The next turn gets the next id.
	if d := send(t, s, sdk.InputUrgent, "urgent while idle"); d.Kind != sdk.DeliveryStarted || d.TurnID != "t2" {
		t.Errorf("urgent input on an idle session: %+v, want a new turn t2", d)
	}
	recv(t, f.turns, "StartTurn t2").Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	_ = s.Close(context.Background(), sdk.CloseImmediate)
	checkStream(t, rec.WaitExited(t))
}

func TestOneTurnAtATime(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver() // no Steer
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "first")
	tr := recv(t, f.turns, "StartTurn")
	for _, kind := range []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent} {
		if _, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: "second"}); !errors.Is(err, sdk.ErrTurnRunning) ||
			!strings.Contains(err.Error(), "turn t1 has not finished") {
			t.Errorf("%v during a turn: %v; want ErrTurnRunning", kind, err)
		}
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputKind(42)}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("an unknown input kind: %v; want ErrUnsupported", err)
	}
	none(t, f.turns, "a second StartTurn")
	tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	rec.WaitCompleted(t, "t1")
	send(t, s, sdk.InputTurn, "third")
	recv(t, f.turns, "StartTurn t2")
}

func TestAStartTurnThatFailsLeavesTheSessionIdle(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	refuse := true
	s := plugin.NewSession(rec, plugin.Driver{
		StartTurn: func(_ context.Context, t *plugin.Turn, text string) error {
			if refuse {
				return errors.New("the CLI refused the turn")
			}
			t.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
			return nil
		},
	})
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Send = %v, want the driver's error", err)
	}
	if n := len(rec.Events()); n != 2 {
		t.Fatalf("a turn the CLI never got emitted events:\n%s", sdktest.Dump(rec.Events()))
	}
	refuse = false
	if d := send(t, s, sdk.InputTurn, "y"); d.TurnID != "t2" {
		t.Errorf("the next turn is %s", d.TurnID)
	}
	rec.WaitCompleted(t, "t2")
	if d, _ := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel}); d.Kind != 0 {
		t.Errorf("cancel without Driver.Cancel = %+v", d)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("cancel without Driver.Cancel: %v, want ErrUnsupported", err)
	}
}

func TestATranscriptThatCannotBeWrittenFailsNothing(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	s := plugin.NewSession(rec, f.driver())
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x", TranscriptPath: filepath.Join(file, "t.log")}); err != nil {
		t.Fatal(err)
	}
	tr := recv(t, f.turns, "StartTurn")
	tr.Output("still streamed")
	tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	c, evs := rec.WaitCompleted(t, "t1")
	errs := sdktest.OfKind(evs, sdk.EventError, "t1")
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, "t1") != "still streamed" || len(errs) != 1 || errs[0].Error.Code != "transcript_failed" {
		t.Errorf("want the turn to run and one transcript_failed error:\n%s", sdktest.Dump(evs))
	}
}

func TestADriverMayNameItsTurns(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	s := plugin.NewSession(rec, plugin.Driver{
		StartTurn: func(_ context.Context, t *plugin.Turn, text string) error {
			if !t.Name("cli-turn-7") {
				return errors.New("could not name the turn")
			}
			t.Output("x")
			if t.Name("too-late") {
				return errors.New("renamed a turn whose events are out")
			}
			return nil
		},
	})
	if d := send(t, s, sdk.InputTurn, "x"); d.TurnID != "cli-turn-7" {
		t.Fatalf("the turn's id is %q, want the CLI's", d.TurnID)
	}
	rec.WaitKind(t, sdk.EventTurnStarted, "cli-turn-7")
}

// Input before the CLI is ready is held, and given to the CLI once it is.
func TestInputBeforeReadyIsHeldUntilReady(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	release := make(chan struct{})
	d.Start = func(context.Context) (sdk.SessionReady, error) {
		<-release
		return sdk.SessionReady{RuntimeSessionID: "thread-1"}, nil
	}
	d.Steer = func(_ context.Context, _ *plugin.Turn, text string) error {
		f.texts <- "steer: " + text
		return nil
	}
	s := plugin.NewSession(rec, d)
	if dl := send(t, s, sdk.InputTurn, "first"); dl.Kind != sdk.DeliveryStarted || dl.TurnID != "t1" {
		t.Fatalf("a turn before ready: %+v, want started t1 at once", dl)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "second"}); !errors.Is(err, sdk.ErrTurnRunning) {
		t.Errorf("a second turn before ready: %v, want ErrTurnRunning", err)
	}
	// Urgent input for the held turn is steered once the CLI has the turn.
	steered := make(chan sdk.Delivery, 1)
	go func() { steered <- send(t, s, sdk.InputUrgent, "urgent") }()
	if n := len(rec.Events()); n != 0 {
		t.Fatalf("events before ready:\n%s", sdktest.Dump(rec.Events()))
	}
	none(t, f.texts, "StartTurn before ready")
	none(t, steered, "a steer receipt before the CLI has the turn")
	close(release)
	if text := recv(t, f.texts, "StartTurn"); text != "first" {
		t.Errorf("the held turn's text is %q", text)
	}
	tr := recv(t, f.turns, "StartTurn")
	// Its TurnStarted comes once the CLI has it, before any output.
	rec.WaitKind(t, sdk.EventTurnStarted, "t1")
	if text := recv(t, f.texts, "the Steer hook"); text != "steer: urgent" {
		t.Errorf("the steer's text is %q", text)
	}
	if dl := recv(t, steered, "the steer's receipt"); dl.Kind != sdk.DeliverySteered || dl.TurnID != "t1" {
		t.Errorf("urgent input before ready: %+v, want steered into t1", dl)
	}
	tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	evs := rec.WaitFor(t, "the held turn's end", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput && len(evs) > 2 })
	if ks := sdktest.Kinds(evs); ks[0] != sdk.EventSessionReady || ks[1] != sdk.EventAwaitingInput || ks[2] != sdk.EventTurnStarted {
		t.Errorf("want session_ready, awaiting_input, then the held turn:\n%s", sdktest.Dump(evs))
	}
	sdktest.CheckTurnOrder(t, evs, "t1", true)
}

// Urgent input waiting for a held turn whose CLI never starts fails, so
// the host queues it.
func TestUrgentInputForAHeldTurnFailsWhenTheCLINeverStarts(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	release := make(chan struct{})
	d.Start = func(context.Context) (sdk.SessionReady, error) {
		<-release
		return sdk.SessionReady{}, errors.New("no such CLI")
	}
	d.Steer = func(context.Context, *plugin.Turn, string) error { return nil }
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "held")
	errc := make(chan error, 1)
	go func() {
		_, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputUrgent, Text: "urgent"})
		errc <- err
	}()
	close(release)
	if err := recv(t, errc, "the steer's error"); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("urgent input for a held turn of a CLI that never started: %v", err)
	}
}

func TestEventsEmittedBeforeReadyFollowSessionReady(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	var s *plugin.Session
	started := make(chan struct{})
	s = plugin.NewSession(rec, plugin.Driver{
		Start: func(context.Context) (sdk.SessionReady, error) {
			<-started
			s.Emit(sdk.ErrorEvent("", "ignored_flag", "a warning found while starting", false))
			return sdk.SessionReady{}, nil
		},
		StartTurn: func(context.Context, *plugin.Turn, string) error { return nil },
	})
	close(started)
	evs := rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return len(evs) == 3 })
	if ks := sdktest.Kinds(evs); ks[0] != sdk.EventSessionReady || ks[1] != sdk.EventError || ks[2] != sdk.EventAwaitingInput {
		t.Errorf("want session_ready, the early error, awaiting_input:\n%s", sdktest.Dump(evs))
	}
}

func TestACancelBeforeReadyEndsTheHeldTurnInterrupted(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	release := make(chan struct{})
	d.Start = func(context.Context) (sdk.SessionReady, error) { <-release; return sdk.SessionReady{}, nil }
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "never run")
	if dl := send(t, s, sdk.InputCancel, ""); dl.Kind != sdk.DeliveryCancelled || dl.TurnID != "t1" {
		t.Fatalf("cancel before ready: %+v", dl)
	}
	close(release)
	c, evs := rec.WaitCompleted(t, "t1")
	if c.Status != sdk.StatusInterrupted {
		t.Errorf("the cancelled held turn ended %+v", c)
	}
	rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput })
	sdktest.CheckTurnOrder(t, evs, "t1", false)
	none(t, f.texts, "StartTurn of a cancelled turn")
	none(t, f.cancels, "Cancel of a turn the CLI never got")
}

func TestAStartThatFailsEndsTheSessionAndItsHeldTurnCleanly(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	release := make(chan struct{})
	d.Start = func(context.Context) (sdk.SessionReady, error) {
		<-release
		return sdk.SessionReady{}, errors.New("mycli: no such file or directory")
	}
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "held")
	close(release)
	evs := rec.WaitExited(t)
	if len(evs) != 2 {
		t.Fatalf("want a fatal Error and Exited only:\n%s", sdktest.Dump(evs))
	}
	if e := evs[0].Error; e == nil || !e.Fatal || e.Code != "start_failed" || !strings.Contains(e.Message, "no such file") ||
		!strings.Contains(e.Message, "turn t1") {
		t.Errorf("want a fatal start_failed naming the cause and the held turn:\n%s", sdktest.Dump(evs))
	}
	if ex := evs[1].Exited; ex.Reason != sdk.ExitCLIExited || ex.ExitCode == nil {
		t.Errorf("Exited %+v, want cli_exited with Stop's exit code", *ex)
	}
	recv(t, f.stops, "Stop after a failed start")
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, sdk.ErrSessionNotFound) ||
		!strings.Contains(err.Error(), "did not start") {
		t.Errorf("Send after a failed start: %v", err)
	}
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Error(err)
	}
}

func TestCloseDuringStartAbandonsIt(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	stopped := make(chan struct{})
	s := plugin.NewSession(rec, plugin.Driver{
		// Start blocks on the CLI (not on ctx): Stop is what ends it.
		Start: func(context.Context) (sdk.SessionReady, error) {
			<-stopped
			return sdk.SessionReady{}, errors.New("killed")
		},
		StartTurn: func(context.Context, *plugin.Turn, string) error { return errors.New("not reached") },
		Stop: func(context.Context, sdk.CloseMode) sdk.ExitInfo {
			close(stopped)
			return sdk.ExitInfo{Signal: "SIGKILL"}
		},
	})
	send(t, s, sdk.InputTurn, "held")
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()
	if len(evs) != 1 || evs[0].Exited == nil || evs[0].Exited.Reason != sdk.ExitClosed {
		t.Fatalf("want only Exited(closed), no start_failed:\n%s", sdktest.Dump(evs))
	}
}

// The steer race, for a CLI that answers each input (a REPL): the turn's
// end arrives while the steer is on its way; the turn goes on until the
// steer's answer, and the receipt is steered.
func TestSteerRacingTheEndOfAnAnsweringCLI(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	inSteer, release := make(chan *plugin.Turn), make(chan struct{})
	d.Steer = func(_ context.Context, t *plugin.Turn, text string) error {
		inSteer <- t
		<-release
		return nil
	}
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "first")
	tr := recv(t, f.turns, "StartTurn")
	steered := make(chan sdk.Delivery, 1)
	go func() { steered <- send(t, s, sdk.InputUrgent, "urgent") }()
	recv(t, inSteer, "the Steer hook")
	// The CLI answers the first input while the steer is being written.
	tr.Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "first"})
	if c := sdktest.OfKind(rec.Events(), sdk.EventTurnCompleted, ""); len(c) != 0 {
		t.Fatalf("the turn ended under a steer in flight:\n%s", sdktest.Dump(rec.Events()))
	}
	close(release)
	if dl := recv(t, steered, "the steer's receipt"); dl.Kind != sdk.DeliverySteered || dl.TurnID != "t1" {
		t.Fatalf("receipt %+v, want steered into t1", dl)
	}
	if s.Running() != tr {
		t.Fatal("the turn ended before the steer's answer")
	}
	tr.Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "urgent"})
	c, evs := rec.WaitCompleted(t, "t1")
	if c.Summary != "urgent" {
		t.Errorf("the turn ended with %+v, want the last answer's outcome", c)
	}
	checkStream(t, evs)
}

// The same race for a CLI that ends the turn itself (Codex): the end is
// held back until the steer's hook says how it went.
func TestSteerRacingTheEndOfACompletingCLI(t *testing.T) {
	for _, tc := range []struct {
		name    string
		result  error
		receipt sdk.DeliveryKind
	}{
		{"the CLI took the steer into the turn", nil, sdk.DeliverySteered},
		{"the CLI says the turn had ended", plugin.ErrTurnEnded, sdk.DeliveryStarted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := sdktest.NewRecorder(t)
			f := newFakeCLI()
			d := f.driver()
			inSteer, release := make(chan *plugin.Turn), make(chan struct{})
			d.Steer = func(_ context.Context, t *plugin.Turn, text string) error {
				inSteer <- t
				<-release
				return tc.result
			}
			s := plugin.NewSession(rec, d)
			send(t, s, sdk.InputTurn, "first")
			recv(t, f.texts, "StartTurn")
			tr := recv(t, f.turns, "StartTurn")
			receipt := make(chan sdk.Delivery, 1)
			go func() { receipt <- send(t, s, sdk.InputUrgent, "urgent") }()
			recv(t, inSteer, "the Steer hook")
			tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
			if c := sdktest.OfKind(rec.Events(), sdk.EventTurnCompleted, ""); len(c) != 0 {
				t.Fatalf("the end was committed under a steer in flight:\n%s", sdktest.Dump(rec.Events()))
			}
			close(release)
			dl := recv(t, receipt, "the receipt")
			if dl.Kind != tc.receipt {
				t.Fatalf("receipt %+v, want %v", dl, tc.receipt)
			}
			rec.WaitCompleted(t, "t1")
			if dl.Kind == sdk.DeliveryStarted {
				if dl.TurnID != "t2" {
					t.Fatalf("the urgent input started %q, want t2", dl.TurnID)
				}
				if text := recv(t, f.texts, "StartTurn of t2"); text != "urgent" {
					t.Errorf("the new turn's text is %q", text)
				}
				recv(t, f.turns, "StartTurn of t2").Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
				rec.WaitCompleted(t, "t2")
			}
			checkStream(t, rec.Events())
		})
	}
}

// An end committed before the urgent input arrives: the input starts a new
// turn, and the Steer hook is not called.
func TestUrgentInputAfterTheEndStartsANewTurn(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	d.Steer = func(context.Context, *plugin.Turn, string) error {
		t.Error("Steer called for a turn that had ended")
		return nil
	}
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "first")
	recv(t, f.turns, "StartTurn").Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	if dl := send(t, s, sdk.InputUrgent, "urgent"); dl.Kind != sdk.DeliveryStarted || dl.TurnID != "t2" {
		t.Errorf("receipt %+v, want a new turn t2", dl)
	}
}

func TestSteerIntoACancelledTurnIsRefused(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	d.Steer = func(context.Context, *plugin.Turn, string) error { return nil }
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "first")
	tr := recv(t, f.turns, "StartTurn")
	if dl := send(t, s, sdk.InputCancel, ""); dl.Kind != sdk.DeliveryCancelled || dl.TurnID != "t1" {
		t.Fatalf("cancel: %+v", dl)
	}
	recv(t, f.cancels, "the Cancel hook")
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputUrgent, Text: "late"}); !errors.Is(err, sdk.ErrTurnRunning) {
		t.Errorf("steering into a cancelled turn: %v, want ErrTurnRunning (the host queues it)", err)
	}
	// Whatever the CLI says, a cancelled turn ends interrupted.
	tr.Complete(sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "exit status 130"})
	if c, _ := rec.WaitCompleted(t, "t1"); c.Status != sdk.StatusInterrupted || c.Summary != "cancelled: exit status 130" {
		t.Errorf("the cancelled turn ended %+v", c)
	}
	if dl := send(t, s, sdk.InputCancel, ""); dl.Kind != sdk.DeliveryNoTurn {
		t.Errorf("cancel while idle: %+v", dl)
	}
}

func TestAFailedSteerCommitsTheEndItHeldBack(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	inSteer, release := make(chan *plugin.Turn), make(chan struct{})
	d.Steer = func(context.Context, *plugin.Turn, string) error {
		inSteer <- nil
		<-release
		return errors.New("broken pipe")
	}
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "first")
	tr := recv(t, f.turns, "StartTurn")
	errc := make(chan error, 1)
	go func() {
		_, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputUrgent, Text: "urgent"})
		errc <- err
	}()
	recv(t, inSteer, "the Steer hook")
	tr.Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	close(release)
	if err := recv(t, errc, "the steer's error"); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("steer error %v", err)
	}
	rec.WaitCompleted(t, "t1")
	checkStream(t, rec.Events())
}

func TestCloseEndsTheRunningTurnOnceThenExited(t *testing.T) {
	for _, mode := range []sdk.CloseMode{sdk.CloseGraceful, sdk.CloseImmediate} {
		t.Run(map[sdk.CloseMode]string{sdk.CloseGraceful: "graceful", sdk.CloseImmediate: "immediate"}[mode], func(t *testing.T) {
			rec := sdktest.NewRecorder(t)
			f := newFakeCLI()
			s := plugin.NewSession(rec, f.driver())
			send(t, s, sdk.InputTurn, "long")
			tr := recv(t, f.turns, "StartTurn")
			tr.Output("working\n")
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			closed := make(chan error, 1)
			go func() { closed <- s.Close(ctx, mode) }()
			<-s.CloseBegun()
			if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, sdk.ErrSessionNotFound) {
				t.Errorf("Send during Close: %v", err)
			}
			if mode == sdk.CloseImmediate {
				// The CLI ends the cancelled turn its own way.
				if c := recv(t, f.cancels, "Cancel"); c != tr {
					t.Error("Close cancelled another turn")
				}
				tr.Complete(sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "killed"})
			} // a graceful close's deadline passes: no cancel, the turn is ended by Close
			recv(t, f.stops, "Stop")
			if err := recv(t, closed, "Close"); err != nil {
				t.Fatal(err)
			}
			evs := rec.Events()
			checkStream(t, evs)
			n := len(evs)
			if evs[n-2].Kind != sdk.EventTurnCompleted || evs[n-2].Completed.Status != sdk.StatusInterrupted || evs[n-1].Exited.Reason != sdk.ExitClosed {
				t.Errorf("want the turn interrupted, then Exited(closed):\n%s", sdktest.Dump(evs))
			}
			if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
				t.Errorf("second Close: %v", err)
			}
			none(t, f.stops, "a second Stop")
			tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted}) // after Exited: nothing
		})
	}
}

func TestAGracefulCloseLetsTheTurnFinishAndAnImmediateOneEscalates(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	s := plugin.NewSession(rec, f.driver())
	send(t, s, sdk.InputTurn, "long")
	tr := recv(t, f.turns, "StartTurn")
	graceful := make(chan error, 1)
	go func() { graceful <- s.Close(context.Background(), sdk.CloseGraceful) }()
	<-s.CloseBegun()
	none(t, f.cancels, "a cancel by a graceful close")
	immediate := make(chan error, 1)
	go func() { immediate <- s.Close(context.Background(), sdk.CloseImmediate) }()
	recv(t, f.cancels, "the escalated close's cancel")
	tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
	recv(t, f.stops, "Stop")
	recv(t, graceful, "graceful Close")
	recv(t, immediate, "immediate Close")
	evs := rec.Events()
	checkStream(t, evs)
	if n := len(sdktest.OfKind(evs, sdk.EventAwaitingInput, "")); n != 1 {
		t.Errorf("a closing session claimed to await input:\n%s", sdktest.Dump(evs))
	}
}

func TestLostEndsTheSessionWithAFatalErrorFirst(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	d.Stop = func(context.Context, sdk.CloseMode) sdk.ExitInfo { return sdk.ExitInfo{ExitCode: sdk.IntPtr(7)} }
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "x")
	recv(t, f.turns, "StartTurn")
	s.Lost(nil)
	evs := rec.WaitExited(t)
	n := len(evs)
	fatal, c, ex := evs[n-3], evs[n-2], evs[n-1]
	if fatal.Error == nil || !fatal.Error.Fatal || fatal.Error.Code != "cli_exited" || !strings.Contains(fatal.Error.Message, "exit status 7") {
		t.Errorf("want a fatal cli_exited error first:\n%s", sdktest.Dump(evs))
	}
	if c.Completed == nil || c.Completed.Status != sdk.StatusFailed || c.Completed.ExitCode == nil || *c.Completed.ExitCode != 7 {
		t.Errorf("want the turn failed with the exit code:\n%s", sdktest.Dump(evs))
	}
	if ex.Exited.Reason != sdk.ExitCLIExited || *ex.Exited.ExitCode != 7 {
		t.Errorf("want Exited(cli_exited, 7):\n%s", sdktest.Dump(evs))
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, sdk.ErrSessionNotFound) ||
		!strings.Contains(err.Error(), "exited") {
		t.Errorf("Send after the CLI exited: %v", err)
	}
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Error(err)
	}
	checkStream(t, rec.Events())
}

// Sends, cancels and closes from many goroutines at once: whatever wins,
// the stream keeps the contract and ends with one Exited (run with -race).
func TestConcurrentSendsAndCloseKeepTheContract(t *testing.T) {
	for round := range 20 {
		rec := sdktest.NewRecorder(t)
		var mu sync.Mutex
		var live []*plugin.Turn
		s := plugin.NewSession(rec, plugin.Driver{
			StartTurn: func(_ context.Context, t *plugin.Turn, text string) error {
				mu.Lock()
				live = append(live, t)
				mu.Unlock()
				go func() {
					t.Output("out " + text)
					t.Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted})
				}()
				return nil
			},
			Steer: func(_ context.Context, t *plugin.Turn, text string) error {
				go t.Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: text})
				return nil
			},
			Cancel: func(_ context.Context, t *plugin.Turn) error {
				go t.Complete(sdk.TurnCompleted{Status: sdk.StatusInterrupted})
				return nil
			},
		})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 20 {
					kind := []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent, sdk.InputCancel}[(i+j)%3]
					_, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: fmt.Sprint(i, j)})
					if err != nil && !errors.Is(err, sdk.ErrTurnRunning) && !errors.Is(err, sdk.ErrSessionNotFound) {
						t.Errorf("Send: %v", err)
					}
				}
			})
		}
		wg.Go(func() {
			mode := sdk.CloseGraceful
			if round%2 == 0 {
				mode = sdk.CloseImmediate
			}
			_ = s.Close(context.Background(), mode)
		})
		wg.Wait()
		_ = s.Close(context.Background(), sdk.CloseImmediate)
		checkStream(t, rec.WaitExited(t))
		mu.Lock()
		for _, tr := range live {
			tr.Output("late") // after Exited: nothing, and no panic
		}
		mu.Unlock()
	}
}

// A cancel that reaches a turn the CLI had already finished (a one-shot
// CLI that exited, its TurnCompleted not yet committed) leaves the turn's
// own outcome: reported interrupted, a finished turn would run again.
func TestACancelTooLateForTheCLIKeepsTheTurnsOutcome(t *testing.T) {
	rec := sdktest.NewRecorder(t)
	f := newFakeCLI()
	d := f.driver()
	d.Cancel = func(_ context.Context, tn *plugin.Turn) error {
		f.cancels <- tn
		return plugin.ErrTurnEnded
	}
	s := plugin.NewSession(rec, d)
	send(t, s, sdk.InputTurn, "finished already")
	turn := recv(t, f.turns, "StartTurn")
	if dl := send(t, s, sdk.InputCancel, ""); dl.Kind != sdk.DeliveryNoTurn {
		t.Fatalf("a cancel the CLI was too late for: %+v, want no_turn", dl)
	}
	recv(t, f.cancels, "the Cancel hook")
	if turn.Cancelled() {
		t.Error("the turn is still marked cancelled after its Cancel hook said it had ended")
	}
	turn.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted, ExitCode: sdk.IntPtr(0)})
	if c, _ := rec.WaitCompleted(t, turn.ID()); c.Status != sdk.StatusCompleted {
		t.Errorf("the finished turn ended %+v, want completed", c)
	}
}

// The steer mode a driver declares reaches the host twice: in SessionReady
// (for status) and in every steered receipt (for the host's log). A driver
// that cannot steer declares none, whatever it says.
func TestSteerModeIsAnnouncedAndReceipted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steer bool
		mode  sdk.SteerMode
		want  sdk.SteerMode
	}{
		{"a native steer by default", true, "", sdk.SteerNative},
		{"an emulated steer that queues", true, sdk.SteerQueue, sdk.SteerQueue},
		{"an emulated steer that restarts", true, sdk.SteerRestart, sdk.SteerRestart},
		{"no steer hook, no steer mode", false, sdk.SteerQueue, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := sdktest.NewRecorder(t)
			f := newFakeCLI()
			d := f.driver()
			d.SteerMode = tc.mode
			if tc.steer {
				d.Steer = func(context.Context, *plugin.Turn, string) error { return nil }
			}
			s := plugin.NewSession(rec, d)
			if got := rec.WaitReady(t).SteerMode; got != tc.want {
				t.Errorf("SessionReady says steer mode %q, want %q", got, tc.want)
			}
			send(t, s, sdk.InputTurn, "first")
			tr := recv(t, f.turns, "StartTurn")
			dl, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputUrgent, Text: "urgent"})
			switch {
			case !tc.steer && !errors.Is(err, sdk.ErrTurnRunning):
				t.Errorf("urgent input without a steer hook: %+v, %v; want ErrTurnRunning", dl, err)
			case tc.steer && (err != nil || dl.Kind != sdk.DeliverySteered || dl.SteerMode != tc.want):
				t.Errorf("urgent input: %+v, %v; want steered with mode %q", dl, err, tc.want)
			}
			tr.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
			if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
				t.Fatal(err)
			}
		})
	}
}
