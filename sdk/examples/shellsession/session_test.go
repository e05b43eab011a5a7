package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests drive the backend in-process, the way the SDK does, with a
// sdktest.Recorder as the event sink: real shells, no plugin process.
// plugin_test.go runs the built plugin through the host's client and the
// conformance suite.

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// harness is one test's shell sessions and the process tracker that
// proves they leave nothing behind.
type harness struct {
	t     *testing.T
	procs *sdktest.Processes
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, procs: sdktest.TrackProcesses(t)}
}

// config is a session config whose shell carries the test's marker.
func (h *harness) config(command string) sdk.SessionConfig {
	return sdk.SessionConfig{
		CLIName: cliName,
		Command: command,
		Workdir: h.t.TempDir(),
		Env:     map[string]string{sdktest.MarkerEnv: h.procs.Marker()},
	}
}

// open opens a sh session and waits until it is ready.
func (h *harness) open() (sdk.Session, *sdktest.Recorder) {
	h.t.Helper()
	rec := sdktest.NewRecorder(h.t)
	s, err := backend{}.OpenSession(context.Background(), h.config("sh"), rec)
	if err != nil {
		h.t.Fatalf("open: %v", err)
	}
	h.t.Cleanup(func() { _ = s.Close(context.Background(), sdk.CloseImmediate) })
	if ready := rec.WaitReady(h.t); ready.RuntimeSessionID != "" || ready.Resumed {
		h.t.Errorf("SessionReady %+v; this backend keeps no session id", ready)
	}
	return s, rec
}

func send(t *testing.T, s sdk.Session, kind sdk.InputKind, text string) sdk.Delivery {
	t.Helper()
	d, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: text})
	if err != nil {
		t.Fatalf("send %v %q: %v", kind, text, err)
	}
	return d
}

// runTurn runs a turn to its end and returns its outcome and output.
func runTurn(t *testing.T, s sdk.Session, rec *sdktest.Recorder, text string) (sdk.TurnCompleted, string) {
	t.Helper()
	d := send(t, s, sdk.InputTurn, text)
	if d.Kind != sdk.DeliveryStarted {
		t.Fatalf("delivery %v, want started", d.Kind)
	}
	c, _ := rec.WaitCompleted(t, d.TurnID)
	evs := rec.WaitFor(t, "awaiting_input after "+d.TurnID, func(evs []sdk.Event) bool {
		return evs[len(evs)-1].Kind == sdk.EventAwaitingInput
	})
	sdktest.CheckTurnOrder(t, evs, d.TurnID, true)
	return c, sdktest.Output(evs, d.TurnID)
}

func TestTurnsRunInOneLiveShell(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	dir := t.TempDir()

	if c, out := runTurn(t, s, rec, "cd "+shellQuote(dir)+" && greeting=hello"); c.Status != sdk.StatusCompleted || out != "" {
		t.Errorf("first turn: %+v, output %q", c, out)
	}
	c, out := runTurn(t, s, rec, `echo "$greeting from $(pwd)"`)
	if want := "hello from " + dir + "\n"; c.Status != sdk.StatusCompleted || out != want {
		t.Errorf("the second turn saw %q (%+v); want %q: state must carry over between turns", out, c, want)
	}
	if c.ExitCode == nil || *c.ExitCode != 0 || c.Summary != "hello from "+dir {
		t.Errorf("completed turn: %+v; want exit code 0 and the last line as summary", c)
	}
	if _, out := runTurn(t, s, rec, "printf 'no final newline'"); out != "no final newline" {
		t.Errorf("output %q: the marker's newline must not be added to the turn's output", out)
	}
	if _, out := runTurn(t, s, rec, "printf '%s\\n' 'héllo ✓ 日本 🚀' >&2"); out != "héllo ✓ 日本 🚀\n" {
		t.Errorf("stderr and non-ASCII text: %q", out)
	}
}

func TestFailuresFailTheTurnNotTheShell(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	for _, tc := range []struct{ prompt, says string }{
		{"false", ""},
		{"no-such-command-xyz", "not found"},
		{"if then", "rror"},            // a syntax error; shells spell it differently
		{"echo 'unterminated", "rror"}, // the quote ends with the chunk, not with the shell
	} {
		c, out := runTurn(t, s, rec, tc.prompt)
		if c.Status != sdk.StatusFailed || c.ExitCode == nil || *c.ExitCode == 0 || !strings.Contains(out, tc.says) {
			t.Errorf("%q: %+v, output %q; want failed with an exit code and %q in the output", tc.prompt, c, out, tc.says)
		}
	}
	if c, out := runTurn(t, s, rec, "echo still here"); c.Status != sdk.StatusCompleted || out != "still here\n" {
		t.Errorf("after the failures: %+v, %q", c, out)
	}
	// A prompt that traces shell code prints the marker's printf, which
	// must not end the turn.
	if c, out := runTurn(t, s, rec, "set -x; echo traced"); c.Status != sdk.StatusCompleted || !strings.Contains(out, "traced") {
		t.Errorf("set -x: %+v, %q", c, out)
	}
	if c, out := runTurn(t, s, rec, "set +x; echo quiet"); c.Status != sdk.StatusCompleted || !strings.HasSuffix(out, "quiet\n") {
		t.Errorf("after set -x: %+v, %q", c, out)
	}
}

func TestSteerAddsCommandsToTheRunningTurn(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	// The turn waits on the fifo until the test opens the gate.
	d := send(t, s, sdk.InputTurn, "echo waiting; cat "+shellQuote(gate)+"; echo first")
	rec.WaitOutput(t, d.TurnID, "waiting")
	if st := send(t, s, sdk.InputUrgent, "echo steered"); st.Kind != sdk.DeliverySteered || st.TurnID != d.TurnID {
		t.Fatalf("urgent input during turn %s: %+v; want steered into it", d.TurnID, st)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "echo no"}); !errors.Is(err, sdk.ErrTurnRunning) {
		t.Errorf("a turn during a turn: %v; want ErrTurnRunning", err)
	}
	if err := os.WriteFile(gate, []byte("gate open\n"), 0); err != nil {
		t.Fatal(err)
	}
	c, evs := rec.WaitCompleted(t, d.TurnID)
	if out := sdktest.Output(evs, d.TurnID); c.Status != sdk.StatusCompleted || out != "waiting\ngate open\nfirst\nsteered\n" {
		t.Errorf("steered turn: %+v, output %q; want the steered command inside the turn, after the first", c, out)
	}
	if n := len(sdktest.OfKind(evs, sdk.EventTurnStarted, "")); n != 1 {
		t.Errorf("%d turns started; steering must not start one", n)
	}
	// Urgent input with no turn running starts one.
	if d := send(t, s, sdk.InputUrgent, "echo urgent"); d.Kind != sdk.DeliveryStarted {
		t.Errorf("urgent input on an idle session: %v; want started", d.Kind)
	}
}

func TestCancelInterruptsTheRunningCommand(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	d := send(t, s, sdk.InputTurn, "echo started; sleep 60; echo not reached")
	rec.WaitOutput(t, d.TurnID, "started")
	send(t, s, sdk.InputUrgent, "echo steer not run")

	start := time.Now()
	if c := send(t, s, sdk.InputCancel, ""); c.Kind != sdk.DeliveryCancelled || c.TurnID != d.TurnID {
		t.Fatalf("cancel: %+v", c)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputUrgent, Text: "echo late"}); !errors.Is(err, sdk.ErrTurnRunning) {
		t.Errorf("steering into a cancelled turn: %v; want ErrTurnRunning", err)
	}
	c, evs := rec.WaitCompleted(t, d.TurnID)
	if took := time.Since(start); took >= cancelGrace {
		t.Errorf("the cancel took %v: SIGINT alone should end sleep", took)
	}
	if out := sdktest.Output(evs, d.TurnID); c.Status != sdk.StatusInterrupted || strings.Contains(out, "not reached") || strings.Contains(out, "steer not run") {
		t.Errorf("cancelled turn: %+v, output %q; want interrupted, and nothing after the cancel run", c, out)
	}
	if d := send(t, s, sdk.InputCancel, ""); d.Kind != sdk.DeliveryNoTurn {
		t.Errorf("cancel on an idle session: %v", d.Kind)
	}
	if c, out := runTurn(t, s, rec, "echo alive"); c.Status != sdk.StatusCompleted || out != "alive\n" {
		t.Errorf("the shell after a cancel: %+v, %q", c, out)
	}
	if alive := h.procs.Alive(); len(alive) != 1 {
		t.Errorf("after the cancel, processes %v are alive; want only the shell", alive)
	}
}

func TestCancelKillsACommandThatIgnoresSIGINT(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	d := send(t, s, sdk.InputTurn, `sh -c 'trap "" INT; echo ignoring; exec sleep 60'; echo not reached`)
	rec.WaitOutput(t, d.TurnID, "ignoring")
	start := time.Now()
	send(t, s, sdk.InputCancel, "")
	c, evs := rec.WaitCompleted(t, d.TurnID)
	took := time.Since(start)
	if c.Status != sdk.StatusInterrupted || strings.Contains(sdktest.Output(evs, d.TurnID), "not reached") {
		t.Errorf("cancelled turn: %+v", c)
	}
	if took < cancelGrace || took > 2*cancelGrace {
		t.Errorf("the cancel took %v; want the second step, after %v", took, cancelGrace)
	}
	if c, _ := runTurn(t, s, rec, "true"); c.Status != sdk.StatusCompleted {
		t.Errorf("the shell after the escalated cancel: %+v", c)
	}
}

func TestTheShellsDeathEndsTheSession(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	d := send(t, s, sdk.InputTurn, "echo bye; exit 7")
	evs := rec.WaitExited(t)
	turnEvs := evs[len(evs)-3:]
	if e := turnEvs[0]; e.Kind != sdk.EventError || !e.Error.Fatal || !strings.Contains(e.Error.Message, "exit status 7") {
		t.Errorf("want a fatal Error first:\n%s", sdktest.Dump(evs))
	}
	if e := turnEvs[1]; e.Kind != sdk.EventTurnCompleted || e.TurnID != d.TurnID || e.Completed.Status != sdk.StatusFailed {
		t.Errorf("want the turn failed next:\n%s", sdktest.Dump(evs))
	}
	if e := turnEvs[2]; e.Exited.Reason != sdk.ExitCLIExited || e.Exited.ExitCode == nil || *e.Exited.ExitCode != 7 {
		t.Errorf("want Exited(cli_exited, 7) last:\n%s", sdktest.Dump(evs))
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "echo"}); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("send after the shell died: %v; want ErrSessionNotFound", err)
	}
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Errorf("close after the shell died: %v", err)
	}
	if alive := h.procs.Alive(); len(alive) > 0 {
		t.Errorf("processes alive: %v", alive)
	}
}

func TestSessionsStayApart(t *testing.T) {
	h := newHarness(t)
	const n = 4
	type lane struct {
		s          sdk.Session
		rec        *sdktest.Recorder
		id         string
		transcript string
	}
	lanes := make([]lane, n)
	for i := range lanes {
		lanes[i].s, lanes[i].rec = h.open()
	}
	// Every session's turn runs at once.
	for i := range lanes {
		lanes[i].transcript = filepath.Join(t.TempDir(), "turn.log")
		d, err := lanes[i].s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn,
			Text: "who=" + strconv.Itoa(i) + "; sleep 0.2; echo \"lane $who\"", TranscriptPath: lanes[i].transcript})
		if err != nil {
			t.Fatal(err)
		}
		lanes[i].id = d.TurnID
	}
	for i, l := range lanes {
		want := "lane " + strconv.Itoa(i) + "\n"
		c, evs := l.rec.WaitCompleted(t, l.id)
		if out := sdktest.Output(evs, l.id); c.Status != sdk.StatusCompleted || out != want {
			t.Errorf("session %d: %+v, output %q; want %q", i, c, out, want)
		}
		if b, err := os.ReadFile(l.transcript); err != nil || string(b) != want {
			t.Errorf("session %d transcript: %q, %v; want %q", i, b, err, want)
		}
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	h := newHarness(t)

	// Immediately, during a turn that started a background job and a
	// daemon in a session of its own, which the group kill cannot reach.
	s, rec := h.open()
	d := send(t, s, sdk.InputTurn, "sleep 300 & setsid sleep 300 & echo started; sleep 300")
	rec.WaitOutput(t, d.TurnID, "started")
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	if alive := h.procs.Alive(); len(alive) > 0 {
		t.Errorf("processes alive when Close returned: %v", alive)
	}
	evs := rec.WaitExited(t)
	if c := sdktest.OfKind(evs, sdk.EventTurnCompleted, d.TurnID); len(c) != 1 || c[0].Completed.Status != sdk.StatusInterrupted {
		t.Errorf("the running turn must end interrupted, once:\n%s", sdktest.Dump(evs))
	}
	if last := evs[len(evs)-1]; last.Exited.Reason != sdk.ExitClosed {
		t.Errorf("Exited %+v; want closed", last.Exited)
	}
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Errorf("second close: %v", err)
	}

	// Gracefully, during a turn: the turn may finish.
	s, rec = h.open()
	d = send(t, s, sdk.InputTurn, "sleep 0.2; echo finished")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx, sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	if alive := h.procs.Alive(); len(alive) > 0 {
		t.Errorf("processes alive when Close returned: %v", alive)
	}
	c, evs := rec.WaitCompleted(t, d.TurnID)
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, d.TurnID) != "finished\n" {
		t.Errorf("a graceful close must let the turn finish: %+v", c)
	}
	if evs := rec.WaitExited(t); len(sdktest.OfKind(evs, sdk.EventAwaitingInput, "")) != 1 {
		t.Errorf("a closing session must not claim to await input:\n%s", sdktest.Dump(evs))
	}
}

func TestOpenRefusesWhatItCannotServe(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		edit func(*sdk.SessionConfig)
		says string
	}{
		{"another CLI", func(c *sdk.SessionConfig) { c.CLIName = "codex" }, `not "codex"`},
		{"an empty command", func(c *sdk.SessionConfig) { c.Command = " " }, "empty"},
		{"a missing workdir", func(c *sdk.SessionConfig) { c.Workdir = "/nonexistent/dir" }, "/nonexistent/dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.config("sh")
			tc.edit(&cfg)
			_, err := backend{}.OpenSession(context.Background(), cfg, sdktest.NewRecorder(t))
			if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("open: %v; want ErrInvalidConfig saying %q", err, tc.says)
			}
		})
	}
}

// A command that starts but is no shell ends the session before it is
// ready: OpenSession does not wait for the shell, so the session says why
// in a fatal start_failed Error, then Exited.
func TestACommandThatIsNoShellFailsTheSession(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ command, says string }{
		{"no-such-shell-xyz", "not found"},
		{"true", "ended before it answered"},
	} {
		t.Run(tc.command, func(t *testing.T) {
			rec := sdktest.NewRecorder(t)
			s, err := backend{}.OpenSession(context.Background(), h.config(tc.command), rec)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			evs := rec.WaitExited(t)
			if len(evs) != 2 || evs[0].Error == nil || !evs[0].Error.Fatal || evs[0].Error.Code != "start_failed" ||
				!strings.Contains(evs[0].Error.Message, tc.says) || evs[1].Exited.Reason != sdk.ExitCLIExited {
				t.Errorf("want a fatal start_failed saying %q, then Exited:\n%s", tc.says, sdktest.Dump(evs))
			}
			if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "echo"}); !errors.Is(err, sdk.ErrSessionNotFound) {
				t.Errorf("send: %v; want ErrSessionNotFound", err)
			}
		})
	}
}

// A turn sent before the shell has answered waits for it, and runs.
func TestATurnBeforeReadyRunsOnceTheShellAnswers(t *testing.T) {
	h := newHarness(t)
	rec := sdktest.NewRecorder(t)
	s, err := backend{}.OpenSession(context.Background(), h.config("sh"), rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background(), sdk.CloseImmediate) })
	d := send(t, s, sdk.InputTurn, "echo early")
	c, evs := rec.WaitCompleted(t, d.TurnID)
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, d.TurnID) != "early\n" || evs[0].Kind != sdk.EventSessionReady {
		t.Errorf("the early turn: %+v:\n%s", c, sdktest.Dump(evs))
	}
}

func TestLargeInputAndLongLines(t *testing.T) {
	h := newHarness(t)
	s, rec := h.open()
	// 1 MiB through stdin and back, and a line longer than the reader's
	// buffer, cut between characters.
	big := strings.Repeat(strings.Repeat("text – héllo ✓ ", 60)+"\n", 1<<20/1201) // ~1 MiB in lines of 1201 bytes
	if c, out := runTurn(t, s, rec, "cat <<'EOF'\n"+big+"EOF"); c.Status != sdk.StatusCompleted || out != big {
		t.Errorf("1 MiB heredoc: %+v, %d bytes back of %d", c, len(out), len(big))
	}
	want := strings.Repeat("é✓", 40000)
	if c, out := runTurn(t, s, rec, `i=0; while [ $i -lt 40000 ]; do printf 'é✓'; i=$((i+1)); done`); c.Status != sdk.StatusCompleted || out != want {
		t.Errorf("a %d-byte line: %+v, got %d bytes", len(want), c, len(out))
	}
}
