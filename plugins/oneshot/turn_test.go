package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

var bigPrompt = strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB

func TestTurnOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		command  string
		prompt   string
		status   sdk.TurnStatus
		exitCode *int
		err      string
		raw      string // the transcript: the CLI's bytes
		out      string // the deltas; "" means raw
	}{
		{name: "cat echoes the prompt", command: "cat", prompt: "hello\n",
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: "hello\n"},
		{name: "a 1 MiB prompt survives stdin", command: "cat", prompt: bigPrompt,
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: bigPrompt},
		{name: "a non-ASCII prompt survives stdin", command: "cat", prompt: "héllo ✓ 日本",
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: "héllo ✓ 日本"},
		{name: "a CLI that never reads its 1 MiB prompt completes", command: "echo done", prompt: bigPrompt,
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: "done\n"},
		{name: "exit 3 fails with exit code 3", command: "cat >/dev/null; echo bye; exit 3", prompt: "x",
			status: sdk.StatusFailed, exitCode: sdk.IntPtr(3), err: "exit status 3", raw: "bye\n"},
		{name: "a CLI killed by a signal fails naming it", command: "echo going; kill -KILL $$", prompt: "x",
			status: sdk.StatusFailed, err: "killed by signal SIGKILL", raw: "going\n"},
		{name: "stdout and stderr are combined in order", command: "echo out; echo err >&2; echo out2", prompt: "x",
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: "out\nerr\nout2\n"},
		{name: "invalid UTF-8 output becomes U+FFFD", command: `printf '\377ok\346\227'`, prompt: "x",
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: "\xffok\xe6\x97", out: "\uFFFDok\uFFFD\uFFFD"},
		// The sleep only tries to split the rune across two reads; the
		// result is the same however the reads fall (utf8_test.go covers
		// every split).
		{name: "a rune split across writes arrives whole", command: `printf 'a\346\227'; sleep 0.05; printf '\245b'`, prompt: "x",
			status: sdk.StatusCompleted, exitCode: sdk.IntPtr(0), raw: "a日b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec := openSession(t, procs, openOpts{command: tt.command})
			transcript := filepath.Join(t.TempDir(), "logs", "nested", "turn.log")
			c, out := runTurn(t, s, rec, sdk.Input{Text: tt.prompt, TranscriptPath: transcript})

			if c.Status != tt.status || c.Error != tt.err || !equalPtr(c.ExitCode, tt.exitCode) {
				t.Errorf("TurnCompleted = %s, want status %s exit %s error %q", fmtCompleted(c), tt.status, fmtPtr(tt.exitCode), tt.err)
			}
			want := tt.out
			if want == "" {
				want = tt.raw
			}
			if out != want {
				t.Errorf("deltas = %.200q (%d bytes), want %.200q (%d bytes)", out, len(out), want, len(want))
			}
			raw, err := os.ReadFile(transcript)
			if err != nil || string(raw) != tt.raw {
				t.Errorf("transcript = %.200q (%d bytes), %v; want %.200q", raw, len(raw), err, tt.raw)
			}
			assertGone(t, procs)
		})
	}
}

func equalPtr(a, b *int) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func fmtPtr(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func fmtCompleted(c sdk.TurnCompleted) string {
	return fmt.Sprintf("{status %s exit %s error %q summary %q}", c.Status, fmtPtr(c.ExitCode), c.Error, c.Summary)
}

func TestTranscript(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	workdir := t.TempDir()
	s, rec := openSession(t, procs, openOpts{command: "echo short", workdir: workdir})

	transcript := filepath.Join(t.TempDir(), "turn.log")
	if err := os.WriteFile(transcript, []byte("an older, longer transcript\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runTurn(t, s, rec, sdk.Input{TranscriptPath: transcript})
	if b, err := os.ReadFile(transcript); err != nil || string(b) != "short\n" {
		t.Errorf("transcript = %q, %v; want the old one truncated to %q", b, err, "short\n")
	}

	// No path, no file: the turn still streams its output as deltas.
	if _, out := runTurn(t, s, rec, sdk.Input{}); out != "short\n" {
		t.Errorf("deltas without a transcript = %q", out)
	}
	if ents, _ := os.ReadDir(workdir); len(ents) != 0 {
		t.Errorf("a turn without a transcript path wrote %v into the workdir", ents)
	}
}

func TestCancelInterruptsTheTurnWithinOneSecond(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command string
		prompt  string
		summary string // the TurnCompleted summary, when it matters
	}{
		{"a CLI with children", `sh -c 'sleep 30 & sleep 30 & echo ready; wait'`, "x", ""},
		{"a CLI that ignores SIGTERM, with children", `sh -c 'trap "" TERM; sleep 30 & sleep 30 & echo ready; wait'`, "x", ""},
		// Here the turn's own shell ignores SIGTERM too, so only the
		// SIGKILL that follows can end the turn.
		{"a shell that ignores SIGTERM, with children", `trap "" TERM; sleep 30 & sleep 30 & echo ready; wait`, "x", "cancelled: killed by signal SIGKILL"},
		{"a CLI that never reads its 1 MiB prompt", `echo ready; exec sleep 30`, bigPrompt, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec := openSession(t, procs, openOpts{command: tt.command})
			id := send(t, s, sdk.Input{Text: tt.prompt})
			rec.WaitOutput(t, id, "ready")

			start := time.Now()
			d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel})
			if err != nil || d.Kind != sdk.DeliveryCancelled || d.TurnID != id {
				t.Fatalf("cancel = %+v, %v; want cancelled %s", d, err, id)
			}
			c, _ := rec.WaitCompleted(t, id)
			if took := time.Since(start); took > time.Second {
				t.Errorf("the cancelled turn took %v to end, want under 1s", took)
			}
			if c.Status != sdk.StatusInterrupted || (tt.summary != "" && c.Summary != tt.summary) {
				t.Errorf("TurnCompleted = %s, want interrupted", fmtCompleted(c))
			}
			evs := rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput })
			sdktest.CheckTurnOrder(t, evs, id, true)
			assertGone(t, procs)
		})
	}
}

func TestCancelWithoutATurnIsNoTurn(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, _ := openSession(t, procs, openOpts{command: "cat"})
	d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel})
	if err != nil || d.Kind != sdk.DeliveryNoTurn {
		t.Fatalf("cancel = %+v, %v; want no_turn", d, err)
	}
}

func TestInputWhileATurnRunsIsRefused(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{command: "echo ready; exec sleep 30"})
	id := send(t, s, sdk.Input{Text: "x"})
	rec.WaitOutput(t, id, "ready")
	for _, kind := range []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent} {
		if d, err := s.Send(context.Background(), sdk.Input{Kind: kind, Text: "y"}); !errors.Is(err, sdk.ErrTurnRunning) {
			t.Errorf("%v while %s runs = %+v, %v; want ErrTurnRunning", kind, id, d, err)
		}
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputCancel}); err != nil {
		t.Fatal(err)
	}
	rec.WaitCompleted(t, id)
}

func TestTurnIDsAreUniqueAndUrgentStartsATurnWhenIdle(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{command: "cat"})
	var ids []string
	for i, kind := range []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent, sdk.InputTurn} {
		prompt := fmt.Sprintf("prompt %d", i)
		id := send(t, s, sdk.Input{Kind: kind, Text: prompt})
		c, evs := rec.WaitCompleted(t, id)
		if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != prompt {
			t.Errorf("%v turn %s = %s output %q", kind, id, fmtCompleted(c), sdktest.Output(evs, id))
		}
		rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput })
		ids = append(ids, id)
	}
	if strings.Join(ids, ",") != "turn-1,turn-2,turn-3" {
		t.Errorf("turn ids = %v, want turn-1..turn-3", ids)
	}
	evs := rec.Events()
	for _, id := range ids {
		sdktest.CheckTurnOrder(t, evs, id, true)
	}
}

func TestTurnEnvironmentAndWorkdir(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	workdir := t.TempDir()
	real, err := filepath.EvalSymlinks(workdir)
	if err != nil {
		t.Fatal(err)
	}
	s, rec := openSession(t, procs, openOpts{
		command: `printf '%s|%s|%s|%s|' "$TINYTOWN_AGENT_ID" "$TINYTOWN_AGENT_NAME" "$HOME" "$(pwd -P)"; test -n "$PATH" && echo path`,
		workdir: workdir,
		env: map[string]string{
			"TINYTOWN_AGENT_ID":   "agent-42",
			"TINYTOWN_AGENT_NAME": "bob the builder",
			"HOME":                "/overridden/home", // SessionConfig.Env wins over the plugin's own
		},
	})
	c, out := runTurn(t, s, rec, sdk.Input{})
	want := "agent-42|bob the builder|/overridden/home|" + real + "|path\n"
	if c.Status != sdk.StatusCompleted || out != want {
		t.Errorf("turn = %s output %q, want %q", fmtCompleted(c), out, want)
	}
}

// TestTurnEnvironmentLacksThePluginsInternals: the CLI does not inherit
// the handshake a host gives the plugin process (set here on the test
// process, which plays the plugin), and keeps everything else. Not
// parallel: it changes the process's environment.
func TestTurnEnvironmentLacksThePluginsInternals(t *testing.T) {
	internal := map[string]string{
		"TTHOST_BACKEND_PLUGIN":    "cookie",
		"PLUGIN_PROTOCOL_VERSIONS": "1",
		"PLUGIN_CLIENT_CERT":       "cert",
		"PLUGIN_UNIX_SOCKET_DIR":   "/tmp/tthost-plugin-x",
		"TTHOST_PLUGIN_HOST_PID":   "1",
		"TTHOST_PLUGIN_LOG_LEVEL":  "info",
	}
	for k, v := range internal {
		t.Setenv(k, v)
	}
	t.Setenv("TTHOST_PLUGIN_INSTANCE", "instance-token") // the host's sweep needs it in the CLI
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{
		command: "env",
		env:     map[string]string{"TINYTOWN_AGENT_ID": "agent-42"},
	})
	c, out := runTurn(t, s, rec, sdk.Input{})
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %s", fmtCompleted(c))
	}
	lines := strings.Split(out, "\n")
	for k := range internal {
		for _, l := range lines {
			if strings.HasPrefix(l, k+"=") {
				t.Errorf("the CLI sees the plugin's %s", l)
			}
		}
	}
	for _, want := range []string{"TINYTOWN_AGENT_ID=agent-42", "TTHOST_PLUGIN_INSTANCE=instance-token"} {
		if !slices.Contains(lines, want) {
			t.Errorf("the CLI's environment lacks %s:\n%s", want, out)
		}
	}
}

func TestConcurrentSessionsStayIsolated(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	const n = 20
	type result struct {
		s          *session
		rec        *recorder
		id, prompt string
		transcript string
	}
	rs := make([]result, n)
	logs := t.TempDir()
	for i := range rs {
		s, rec := openSession(t, procs, openOpts{command: `cat; printf ' from %s' "$AGENT"`, env: map[string]string{"AGENT": fmt.Sprint(i)}})
		rs[i] = result{s: s, rec: rec, prompt: fmt.Sprintf("prompt %d", i), transcript: filepath.Join(logs, fmt.Sprintf("%d.log", i))}
	}
	// Start every turn before any is waited for, so they run together.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range rs {
		wg.Go(func() {
			var d sdk.Delivery
			d, errs[i] = rs[i].s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: rs[i].prompt, TranscriptPath: rs[i].transcript})
			rs[i].id = d.TurnID
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for i, r := range rs {
		c, _ := r.rec.WaitCompleted(t, r.id)
		evs := r.rec.WaitFor(t, "awaiting_input", func(evs []sdk.Event) bool { return evs[len(evs)-1].Kind == sdk.EventAwaitingInput })
		sdktest.CheckTurnOrder(t, evs, r.id, true)
		want := fmt.Sprintf("prompt %d from %d", i, i)
		got := sdktest.Output(evs, r.id)
		b, _ := os.ReadFile(r.transcript)
		if c.Status != sdk.StatusCompleted || got != want || string(b) != want {
			t.Errorf("session %d: %s deltas %q transcript %q, want %q", i, fmtCompleted(c), got, b, want)
		}
		for _, e := range evs {
			if e.TurnID != "" && e.TurnID != "turn-1" {
				t.Errorf("session %d saw an event of %s", i, e.TurnID)
			}
		}
	}
	assertGone(t, procs)
}

func TestTurnEndKillsWhatTheCLILeftBehind(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, command string }{
		// Without the group kill the turn would wait 30s for EOF.
		{"a background child holding the output", `sleep 30 & echo started`},
		{"a detached child with its own output", `(sleep 30 </dev/null >/dev/null 2>&1 &); echo started`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec := openSession(t, procs, openOpts{command: tt.command})
			c, out := runTurn(t, s, rec, sdk.Input{})
			if c.Status != sdk.StatusCompleted || out != "started\n" {
				t.Errorf("turn = %s output %q", fmtCompleted(c), out)
			}
			assertGone(t, procs)
		})
	}
}

func TestTurnThatCannotStartFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spoil func(t *testing.T, workdir string) sdk.Input
		msg   string
	}{
		{"a workdir removed after open", func(t *testing.T, workdir string) sdk.Input {
			if err := os.Remove(workdir); err != nil {
				t.Fatal(err)
			}
			return sdk.Input{Text: "x"}
		}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			workdir := filepath.Join(t.TempDir(), "work")
			if err := os.Mkdir(workdir, 0o755); err != nil {
				t.Fatal(err)
			}
			s, rec := openSession(t, procs, openOpts{command: "cat", workdir: workdir})
			c, _ := runTurn(t, s, rec, tt.spoil(t, workdir))
			if c.Status != sdk.StatusFailed || !strings.Contains(c.Error, tt.msg) {
				t.Errorf("TurnCompleted = %s, want failed mentioning %q", fmtCompleted(c), tt.msg)
			}
			var startFailed bool
			for _, e := range rec.Events() {
				startFailed = startFailed || (e.Kind == sdk.EventError && e.Error.Code == "start_failed" && !e.Error.Fatal)
			}
			if !startFailed {
				t.Errorf("no start_failed error event:\n%s", sdktest.Dump(rec.Events()))
			}

			// The session survives: once the cause is gone, turns run.
			if err := os.MkdirAll(workdir, 0o755); err != nil {
				t.Fatal(err)
			}
			if c, out := runTurn(t, s, rec, sdk.Input{Text: "again"}); c.Status != sdk.StatusCompleted || out != "again" {
				t.Errorf("next turn = %s output %q", fmtCompleted(c), out)
			}
		})
	}
}

// A transcript that cannot be created fails nothing: the turn runs, its
// output reaches the host as events, and an Error says why the file lacks
// it (the SDK's plugin.Session does this for every backend).
func TestATranscriptThatCannotBeCreatedFailsNothing(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{command: "cat"})
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c, out := runTurn(t, s, rec, sdk.Input{Text: "x", TranscriptPath: filepath.Join(file, "turn.log")})
	errs := sdktest.OfKind(rec.Events(), sdk.EventError, "turn-1")
	if c.Status != sdk.StatusCompleted || out != "x" || len(errs) != 1 || errs[0].Error.Code != "transcript_failed" ||
		!strings.Contains(errs[0].Error.Message, "transcript") {
		t.Errorf("turn = %s output %q; want completed with one transcript_failed error:\n%s", fmtCompleted(c), out, sdktest.Dump(rec.Events()))
	}
}

// A process that moves to a session of its own (setsid) escapes the turn's
// process group, but not its tag: it is killed when the turn ends, and the
// turn does not wait for the output it holds.
func TestTurnEndKillsAnEscapedProcessByItsTag(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{command: `(setsid sh -c 'echo escaped; exec sleep 30' &) | head -n 1`})
	start := time.Now()
	c, out := runTurn(t, s, rec, sdk.Input{})
	if took := time.Since(start); c.Status != sdk.StatusCompleted || out != "escaped\n" || took >= drainGrace {
		t.Errorf("turn = %s output %q after %v; want completed at once", fmtCompleted(c), out, took)
	}
	assertGone(t, procs)
}

// drainGrace is how long the SDK's plugin.Process keeps reading output that
// a process outside its reach holds open, once the CLI is gone.
const drainGrace = time.Second

// A process that leaves the turn's process group (setsid) and drops the
// tag (it cleared its environment) is out of the backend's reach; if it
// keeps the output open, the turn still ends, after drainGrace, with an
// output_truncated error. The test kills it itself.
func TestTurnEndsWhenAnEscapedProcessHoldsTheOutput(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	t.Cleanup(func() {
		for _, pid := range procs.Alive() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// The escapee reports through head only once it runs in a session of
	// its own without the tag, so the turn's shell cannot end (and kill
	// its group and tag) before the escape; its stderr is the turn's
	// output, which it keeps open.
	s, rec := openSession(t, procs, openOpts{command: `(setsid env -u TTHOST_PROCESS_TAG sh -c 'echo escaped; exec sleep 30' &) | head -n 1`})
	start := time.Now()
	id := send(t, s, sdk.Input{})
	c, evs := rec.WaitCompleted(t, id)
	if took := time.Since(start); took < drainGrace || took > drainGrace+5*time.Second {
		t.Errorf("the turn took %v, want about drainGrace (%v)", took, drainGrace)
	}
	var truncated bool
	for _, e := range evs {
		truncated = truncated || (e.Kind == sdk.EventError && e.Error.Code == "output_truncated")
	}
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "escaped\n" || !truncated {
		t.Errorf("turn = %s output %q, want completed with an output_truncated error:\n%s", fmtCompleted(c), sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	if len(procs.Alive()) == 0 {
		t.Errorf("the escaped process is gone; this test no longer shows the limit")
	}
}
