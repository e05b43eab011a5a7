package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/acp/acptest"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests drive the real Gemini CLI (`gemini --acp`, pinned, installed
// by `make ensure-gemini`) through the backend, offline: gemini talks only
// to acptest's MockGemini on loopback. The fake agent covers what gemini
// will not do on demand; these prove the protocol against the real thing.

type geminiRig struct {
	procs  *sdktest.Processes
	mock   *acptest.MockGemini
	home   string
	gemini string
}

func newGeminiRig(t *testing.T, script acptest.Script) *geminiRig {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	bin := acptest.GeminiBinary(t)
	mock := acptest.NewMockGemini(t, script)
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("gemini sent requests the mock does not serve: %v", other)
		}
	})
	return &geminiRig{procs: procs, mock: mock, home: acptest.NewGeminiHome(t), gemini: bin}
}

// open opens a session on gemini with Tinytown's preset command (`gemini`,
// to which the backend adds --acp) and closes it at cleanup.
func (r *geminiRig) open(t *testing.T, workdir, resumeID string, options map[string]string) (*session, *slowRecorder) {
	t.Helper()
	env := acptest.GeminiEnv(r.home, r.mock)
	env[sdktest.MarkerEnv] = r.procs.Marker()
	return openReal(t, sdk.SessionConfig{
		CLIName: "gemini", Command: r.gemini, Workdir: workdir, Env: env, ResumeID: resumeID, Options: options,
		AgentName: "real", LogDir: filepath.Join(workdir, "logs"),
	})
}

// openReal opens a session on a real agent, waits until it is ready with a
// session id, and closes it at cleanup.
func openReal(t *testing.T, cfg sdk.SessionConfig) (*session, *slowRecorder) {
	t.Helper()
	st, err := validate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newSlowRecorder(t)
	s := openSession(st, rec, nil)
	t.Cleanup(func() {
		if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if ready := waitReadyLong(t, rec); ready.RuntimeSessionID == "" {
		t.Fatalf("SessionReady without a session id:\n%s", sdktest.Dump(rec.Events()))
	}
	return s, rec
}

// waitReadyLong waits for SessionReady: gemini takes a few seconds to
// start (more under -race on a small machine, and up to a minute when a
// load waits for the minute to turn).
func waitReadyLong(t *testing.T, rec *slowRecorder) sdk.SessionReady {
	t.Helper()
	return *waitLong(t, rec, "session ready", func(e sdk.Event) bool { return e.Kind == sdk.EventSessionReady }).Ready
}

func waitLong(t *testing.T, rec *slowRecorder, what string, match func(sdk.Event) bool) sdk.Event {
	t.Helper()
	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	for {
		changed := rec.changed() // before the events: no wake-up is lost
		evs := rec.Events()
		for _, e := range evs {
			if match(e) {
				return e
			}
			if e.Kind == sdk.EventExited {
				t.Fatalf("the session ended waiting for %s:\n%s", what, sdktest.Dump(evs))
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within 90s:\n%s", what, sdktest.Dump(evs))
		}
	}
}

// slowRecorder is an sdktest.Recorder that a test can also wait on for
// longer than sdktest.WaitLong (a real CLI under -race on a small machine).
type slowRecorder struct {
	*sdktest.Recorder
	mu   sync.Mutex
	wake chan struct{}
}

func newSlowRecorder(t *testing.T) *slowRecorder {
	return &slowRecorder{Recorder: sdktest.NewRecorder(t), wake: make(chan struct{})}
}

func (r *slowRecorder) Emit(e sdk.Event) {
	r.Recorder.Emit(e)
	r.mu.Lock()
	close(r.wake)
	r.wake = make(chan struct{})
	r.mu.Unlock()
}

// changed is closed at the next event.
func (r *slowRecorder) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wake
}

func geminiTurn(t *testing.T, s *session, rec *slowRecorder, text string) (string, sdk.TurnCompleted, []sdk.Event) {
	t.Helper()
	id := send(t, s, sdk.Input{Kind: sdk.InputTurn, Text: text}, sdk.DeliveryStarted).TurnID
	c := *waitLong(t, rec, "the end of "+id, func(e sdk.Event) bool { return e.Kind == sdk.EventTurnCompleted && e.TurnID == id }).Completed
	evs := rec.WaitFor(t, "awaiting_input after "+id, lastIs(sdk.EventAwaitingInput))
	sdktest.CheckTurnOrder(t, evs, id, true)
	return id, c, evs
}

func TestRealGeminiTextAndToolTurnsInOneProcess(t *testing.T) {
	t.Parallel()
	r := newGeminiRig(t, nil)
	s, rec := r.open(t, t.TempDir(), "", nil)
	pid := s.current().proc.Pid()

	id, c, evs := geminiTurn(t, s, rec, "hello there")
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: hello there" || c.Summary != "echo: hello there" {
		t.Fatalf("text turn %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	u := sdktest.OfKind(evs, sdk.EventUsage, id)
	if len(u) == 0 || u[len(u)-1].Usage.InputTokens <= 0 || u[len(u)-1].Usage.OutputTokens <= 0 {
		t.Errorf("no usage from gemini's _meta.quota:\n%s", sdktest.Dump(evs))
	}

	id, c, evs = geminiTurn(t, s, rec, "now a TOOL_CALL please")
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || !strings.Contains(out, "tool output:") || !strings.Contains(out, "hi") {
		t.Fatalf("tool turn %+v, output %q:\n%s", c, out, sdktest.Dump(evs))
	}
	tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(tools) == 0 || tools[len(tools)-1].Tool.Status != "completed" || tools[0].Tool.Kind != "command" || !strings.Contains(tools[0].Tool.Name, "echo hi") {
		t.Fatalf("tool calls:\n%s", sdktest.Dump(tools))
	}
	// gemini runs `echo` without asking (a read-only command); whatever it
	// asked was approved.
	for _, a := range sdktest.OfKind(evs, sdk.EventApproval, id) {
		if a.Approval.Decision != "approved" {
			t.Errorf("approval %+v", a.Approval)
		}
	}
	if s.current().proc.Pid() != pid {
		t.Errorf("the second turn ran in another process")
	}
	if codes := errorsOf(rec.Events()); len(codes) > 0 {
		t.Errorf("errors from a healthy gemini: %v\n%s", codes, sdktest.Dump(rec.Events()))
	}
}

func TestRealGeminiPermissionDenyDoesNotRunTheCommand(t *testing.T) {
	t.Parallel()
	r := newGeminiRig(t, nil)
	workdir := t.TempDir()
	s, rec := r.open(t, workdir, "", map[string]string{"permission": "reject"})
	id, c, evs := geminiTurn(t, s, rec, "please TOUCH_FILE now")
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn %+v:\n%s", c, sdktest.Dump(evs))
	}
	if a := sdktest.OfKind(evs, sdk.EventApproval, id); len(a) != 1 || a[0].Approval.Decision != "denied" || !strings.Contains(a[0].Approval.Description, "touch made_by_gemini.txt") {
		t.Fatalf("approvals:\n%s", sdktest.Dump(a))
	}
	if _, err := os.Stat(filepath.Join(workdir, "made_by_gemini.txt")); !os.IsNotExist(err) {
		t.Fatalf("the rejected command ran: %v", err)
	}
	reqs := r.mock.Requests()
	if res := reqs[len(reqs)-1].ResponsesSinceLastUser(); len(res) != 1 || !strings.Contains(res[0].JSON, "cancel") {
		t.Errorf("the model was not told the call was refused: %+v", res)
	}
}

func TestRealGeminiCancelALongReplyThenTheNextTurnWorks(t *testing.T) {
	t.Parallel()
	r := newGeminiRig(t, nil)
	s, rec := r.open(t, t.TempDir(), "", nil)
	pid := s.current().proc.Pid()
	id := send(t, s, sdk.Input{Text: "a SLOW_STREAM please"}, sdk.DeliveryStarted).TurnID
	waitLong(t, rec, "a tick", func(e sdk.Event) bool { return e.Kind == sdk.EventAssistantDelta && e.TurnID == id })
	start := time.Now()
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	c := *waitLong(t, rec, "the cancelled end", func(e sdk.Event) bool { return e.Kind == sdk.EventTurnCompleted && e.TurnID == id }).Completed
	if c.Status != sdk.StatusInterrupted {
		t.Fatalf("cancelled turn %+v", c)
	}
	t.Logf("gemini ended the cancelled turn in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.mock.WaitRequest(ctx, func(q acptest.Request) bool { return q.Outcome == acptest.OutcomeDisconnected }); err != nil {
		t.Errorf("gemini did not drop the cancelled stream: %v", err)
	}
	_, c2, evs := geminiTurn(t, s, rec, "after the cancel")
	if c2.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, c2ID(evs)), "echo: after the cancel") || s.current().proc.Pid() != pid {
		t.Fatalf("next turn %+v:\n%s", c2, sdktest.Dump(evs))
	}
}

// c2ID is the id of the last turn in evs.
func c2ID(evs []sdk.Event) string {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == sdk.EventTurnStarted {
			return evs[i].TurnID
		}
	}
	return ""
}

func TestRealGeminiSteerModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"queue", "restart"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			script := acptest.DefaultScript
			if mode == "queue" {
				// The running prompt must end by itself for a queued steer.
				script = func(q acptest.Request) acptest.Reply {
					if strings.Contains(q.LastUserText(), acptest.MarkSlowStream) {
						return acptest.SlowReply(30, 50*time.Millisecond)
					}
					return acptest.DefaultScript(q)
				}
			}
			r := newGeminiRig(t, script)
			s, rec := r.open(t, t.TempDir(), "", map[string]string{"steer_mode": mode})
			id := send(t, s, sdk.Input{Text: "a SLOW_STREAM please"}, sdk.DeliveryStarted).TurnID
			waitLong(t, rec, "a tick", func(e sdk.Event) bool { return e.Kind == sdk.EventAssistantDelta && e.TurnID == id })
			d := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT also mention redis"}, sdk.DeliverySteered)
			if d.TurnID != id || string(d.SteerMode) != mode {
				t.Fatalf("receipt %+v", d)
			}
			c := *waitLong(t, rec, "the end", func(e sdk.Event) bool { return e.Kind == sdk.EventTurnCompleted && e.TurnID == id }).Completed
			evs := rec.Events()
			out := sdktest.Output(evs, id)
			if c.Status != sdk.StatusCompleted || !strings.Contains(out, "urgent: URGENT also mention redis") {
				t.Fatalf("turn %+v, output %q:\n%s", c, out, sdktest.Dump(evs))
			}
			if codes := errorsOf(evs); !slices.Equal(codes, []string{"steer_" + map[string]string{"queue": "queued", "restart": "restarted"}[mode]}) {
				t.Errorf("error events %v", codes)
			}
			reqs := r.mock.Requests()
			last := reqs[len(reqs)-1].LastUserText()
			if mode == "restart" && !strings.Contains(last, "SLOW_STREAM") {
				t.Errorf("the restarted prompt %q does not merge the turn's text", last)
			}
			if mode == "queue" && strings.Contains(last, "SLOW_STREAM") {
				t.Errorf("the queued prompt %q repeats the turn's text", last)
			}
		})
	}
}

func TestRealGeminiResumeInANewProcessSeesTheHistory(t *testing.T) {
	t.Parallel()
	r := newGeminiRig(t, nil)
	workdir := t.TempDir()
	s, rec := r.open(t, workdir, "", nil)
	geminiTurn(t, s, rec, "remember the word pelican")
	saved := rec.WaitReady(t).RuntimeSessionID
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}

	s2, rec2 := r.open(t, workdir, saved, nil)
	ready := rec2.WaitReady(t)
	if !ready.Resumed || ready.RuntimeSessionID != saved || ready.ContextLostReason != "" {
		t.Fatalf("SessionReady = %+v:\n%s", ready, sdktest.Dump(rec2.Events()))
	}
	id, c, evs := geminiTurn(t, s2, rec2, "REMEMBER")
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || out != "I remember: remember the word pelican" {
		t.Fatalf("resumed turn %+v, output %q (the replayed history must not be output):\n%s", c, out, sdktest.Dump(evs))
	}
	// The load came within the minute the session was written: the guard
	// may have waited, and said so; nothing else may be reported.
	for _, code := range errorsOf(evs) {
		if code != "load_delayed" {
			t.Errorf("error %s:\n%s", code, sdktest.Dump(evs))
		}
	}
	// An id gemini never saw: a new session, the context lost.
	_, rec3 := r.open(t, workdir, "00000000-dead-beef-0000-000000000000", nil)
	if r3 := rec3.WaitReady(t); r3.Resumed || r3.ContextLostReason == "" {
		t.Fatalf("unknown id: %+v", r3)
	}
}

func TestRealGeminiKilledAgentLosesTheSessionAndLeavesNoProcess(t *testing.T) {
	t.Parallel()
	r := newGeminiRig(t, nil)
	s, rec := r.open(t, t.TempDir(), "", nil)
	id := send(t, s, sdk.Input{Text: "a SLOW_STREAM please"}, sdk.DeliveryStarted).TurnID
	waitLong(t, rec, "a tick", func(e sdk.Event) bool { return e.Kind == sdk.EventAssistantDelta && e.TurnID == id })
	// The agent killed from outside: the session is lost, nothing is left.
	if err := syscall.Kill(-s.current().proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	evs := rec.WaitExited(t)
	if errs := sdktest.OfKind(evs, sdk.EventError, ""); len(errs) == 0 || !errs[0].Error.Fatal {
		t.Fatalf("events:\n%s", sdktest.Dump(evs))
	}
	assertGone(t, r.procs)
}
