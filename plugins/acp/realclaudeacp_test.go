package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/plugins/acp/acptest"
	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests drive the real claude-code-acp (Zed's ACP adapter for Claude
// Code, pinned, installed by `make ensure-claude-code-acp`) through the
// backend, offline against claudetest's MockAnthropic (acptest's
// ClaudeCodeACPEnv). claude-code-acp is no CLI tthost names: it is served
// as any CLI whose town config chooses this backend.

type claudeACPRig struct {
	procs *sdktest.Processes
	mock  *claudetest.MockAnthropic
	home  string
	bin   string
}

func newClaudeACPRig(t *testing.T, script claudetest.Script) *claudeACPRig {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	bin := acptest.ClaudeCodeACPBinary(t)
	mock := claudetest.NewMockAnthropic(t, script)
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("claude-code-acp sent requests the mock does not serve: %v", other)
		}
	})
	return &claudeACPRig{procs: procs, mock: mock, home: claudetest.NewHome(t), bin: bin}
}

// open opens a session on claude-code-acp and closes it at cleanup.
func (r *claudeACPRig) open(t *testing.T, workdir, resumeID string, options map[string]string) (*session, *slowRecorder) {
	t.Helper()
	env := acptest.ClaudeCodeACPEnv(r.home, r.mock)
	env[sdktest.MarkerEnv] = r.procs.Marker()
	return openReal(t, sdk.SessionConfig{
		CLIName: "claude-acp", Command: r.bin, Workdir: workdir, Env: env, ResumeID: resumeID, Options: options,
		AgentName: "real", LogDir: filepath.Join(workdir, "logs"),
	})
}

// rootNotices counts the root_sandbox notices in evs: one per session
// when the plugin runs as root, none otherwise.
func rootNotices(t *testing.T, evs []sdk.Event) {
	t.Helper()
	n := 0
	for _, e := range evs {
		if e.Kind == sdk.EventError && e.Error.Code == "root_sandbox" {
			n++
			if e.Error.Fatal || e.TurnID != "" {
				t.Errorf("root_sandbox notice %+v", e)
			}
		}
	}
	if want := map[bool]int{true: 1, false: 0}[os.Geteuid() == 0]; n != want {
		t.Errorf("%d root_sandbox notices, want %d:\n%s", n, want, sdktest.Dump(evs))
	}
}

// claudeACPScript is DefaultScript, plus: TOUCH_FILE calls Bash `touch
// made_by_claude.txt` (a command Claude Code asks permission for, unlike
// `echo`), then answers "touched" or, when the call was refused, "not
// touched"; STEER_STREAM streams 60 deltas 50 ms apart and ends by itself
// (a queued steer follows it).
func claudeACPScript(q claudetest.Request) claudetest.Reply {
	last := claudetest.Unwrap(q.LastUserText())
	switch {
	case strings.Contains(last, "TOUCH_FILE"):
		results := q.ToolResults()
		if len(results) == 0 {
			return claudetest.Reply{ToolUse: &claudetest.ToolUse{Name: "Bash", Input: `{"command":"touch made_by_claude.txt","description":"Make a file"}`}}
		}
		if results[len(results)-1].IsError {
			return claudetest.Reply{Text: "not touched"}
		}
		return claudetest.Reply{Text: "touched"}
	case strings.Contains(last, "STEER_STREAM"):
		return claudetest.SlowReply(60, 50*time.Millisecond)
	}
	return claudetest.DefaultScript(q)
}

func TestRealClaudeCodeACPTextToolAndCancelInOneProcess(t *testing.T) {
	t.Parallel()
	r := newClaudeACPRig(t, nil)
	s, rec := r.open(t, t.TempDir(), "", nil)
	pid := s.current().proc.Pid()

	id, c, evs := geminiTurn(t, s, rec, "hello there")
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: hello there" || c.Summary != "echo: hello there" {
		t.Fatalf("first turn %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	id, c, evs = geminiTurn(t, s, rec, "second turn")
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: second turn" {
		t.Fatalf("second turn %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	// claude-code-acp 0.16.2 answers session/prompt with a stopReason
	// only: no usage to report (docs/compatibility.md).
	if u := sdktest.OfKind(evs, sdk.EventUsage, ""); len(u) != 0 {
		t.Errorf("usage from claude-code-acp, which reported none before: update docs/compatibility.md and assert it:\n%s", sdktest.Dump(u))
	}

	// Bash `echo hi`: Claude Code runs a read-only command without asking.
	id, c, evs = geminiTurn(t, s, rec, "now a TOOL_CALL please")
	if out := sdktest.Output(evs, id); c.Status != sdk.StatusCompleted || out != "tool output: hi" {
		t.Fatalf("tool turn %+v, output %q:\n%s", c, out, sdktest.Dump(evs))
	}
	tools := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(tools) < 2 || tools[0].Tool.Kind != "command" || tools[len(tools)-1].Tool.Status != "completed" || !strings.Contains(tools[len(tools)-1].Tool.Name, "echo hi") {
		t.Fatalf("tool calls:\n%s", sdktest.Dump(tools))
	}
	if a := sdktest.OfKind(evs, sdk.EventApproval, id); len(a) != 0 {
		t.Errorf("approvals for echo:\n%s", sdktest.Dump(a))
	}

	// A long streamed answer cancelled: session/cancel interrupts Claude
	// Code's query, the prompt ends "cancelled", the process stays.
	id = send(t, s, sdk.Input{Text: "a SLOW_STREAM please"}, sdk.DeliveryStarted).TurnID
	waitLong(t, rec, "a tick", func(e sdk.Event) bool { return e.Kind == sdk.EventAssistantDelta && e.TurnID == id })
	start := time.Now()
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	c = *waitLong(t, rec, "the cancelled end", func(e sdk.Event) bool { return e.Kind == sdk.EventTurnCompleted && e.TurnID == id }).Completed
	if c.Status != sdk.StatusInterrupted {
		t.Fatalf("cancelled turn %+v", c)
	}
	t.Logf("claude-code-acp ended the cancelled turn in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.mock.WaitRequest(ctx, func(q claudetest.Request) bool { return q.Outcome == claudetest.OutcomeDisconnected }); err != nil {
		t.Errorf("Claude Code did not drop the cancelled stream: %v", err)
	}
	id, c, evs = geminiTurn(t, s, rec, "after the cancel")
	if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: after the cancel" {
		t.Fatalf("turn after the cancel %+v, output %q:\n%s", c, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	if s.current().proc.Pid() != pid {
		t.Errorf("the turns ran in more than one process")
	}
	all := rec.Events()
	rootNotices(t, all)
	for _, code := range errorsOf(all) {
		if code != "root_sandbox" {
			t.Errorf("error %s from a healthy claude-code-acp:\n%s", code, sdktest.Dump(all))
		}
	}
}

// Claude Code asks before `touch`: claude-code-acp sends
// session/request_permission (allow_always, allow_once, reject_once),
// which the option permission answers. A rejection interrupts Claude
// Code's turn (claude-code-acp denies with interrupt): the prompt ends
// end_turn at once, without asking the model again, and the session goes
// on.
func TestRealClaudeCodeACPPermissionByPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		permission, decision, output, toolStatus string
		made                                     bool
	}{
		{"allow", "approved", "touched", "completed", true},
		{"reject", "denied", "", "failed", false},
	} {
		t.Run(tc.permission, func(t *testing.T) {
			t.Parallel()
			r := newClaudeACPRig(t, claudeACPScript)
			workdir := t.TempDir()
			s, rec := r.open(t, workdir, "", map[string]string{"permission": tc.permission})
			id, c, evs := geminiTurn(t, s, rec, "please TOUCH_FILE now")
			if out := sdktest.Output(evs, id); c.Status != sdk.StatusCompleted || out != tc.output {
				t.Fatalf("turn %+v, output %q:\n%s", c, out, sdktest.Dump(evs))
			}
			a := sdktest.OfKind(evs, sdk.EventApproval, id)
			if len(a) != 1 || a[0].Approval.Decision != tc.decision || !strings.Contains(a[0].Approval.Description, "touch made_by_claude.txt") {
				t.Fatalf("approvals:\n%s", sdktest.Dump(a))
			}
			if tools := sdktest.OfKind(evs, sdk.EventToolCall, id); tools[len(tools)-1].Tool.Status != tc.toolStatus {
				t.Errorf("tool calls:\n%s", sdktest.Dump(tools))
			}
			_, err := os.Stat(filepath.Join(workdir, "made_by_claude.txt"))
			if made := err == nil; made != tc.made {
				t.Fatalf("made_by_claude.txt exists: %v, want %v (%v)", made, tc.made, err)
			}
			id, c, evs = geminiTurn(t, s, rec, "and then")
			if c.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: and then" {
				t.Fatalf("next turn %+v:\n%s", c, sdktest.Dump(evs))
			}
		})
	}
}

// A steer in queue mode: prompted after the running prompt ends by
// itself, within the same turn.
func TestRealClaudeCodeACPSteerQueued(t *testing.T) {
	t.Parallel()
	r := newClaudeACPRig(t, claudeACPScript)
	s, rec := r.open(t, t.TempDir(), "", nil)
	id := send(t, s, sdk.Input{Text: "a STEER_STREAM please"}, sdk.DeliveryStarted).TurnID
	waitLong(t, rec, "a tick", func(e sdk.Event) bool { return e.Kind == sdk.EventAssistantDelta && e.TurnID == id })
	d := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "URGENT also mention redis"}, sdk.DeliverySteered)
	if d.TurnID != id || d.SteerMode != sdk.SteerMode(steerQueue) {
		t.Fatalf("receipt %+v", d)
	}
	c := *waitLong(t, rec, "the end", func(e sdk.Event) bool { return e.Kind == sdk.EventTurnCompleted && e.TurnID == id }).Completed
	evs := rec.Events()
	out := sdktest.Output(evs, id)
	if c.Status != sdk.StatusCompleted || !strings.HasPrefix(out, "tick 1 ") || !strings.HasSuffix(out, "echo: URGENT also mention redis") {
		t.Fatalf("turn %+v, output %q:\n%s", c, out, sdktest.Dump(evs))
	}
	if codes := errorsOf(sdktest.OfKind(evs, sdk.EventError, id)); !slices.Equal(codes, []string{"steer_queued"}) {
		t.Errorf("the turn's errors %v", codes)
	}
	reqs := r.mock.TurnRequests()
	if last := claudetest.Unwrap(reqs[len(reqs)-1].LastUserText()); last != "URGENT also mention redis" {
		t.Errorf("the queued prompt is %q", last)
	}
}

// claude-code-acp declares loadSession: a new process loads the session
// from the same home and workdir, its replay is not output, and the model
// sees the history. An id it does not know starts anew, context lost.
func TestRealClaudeCodeACPResumeInANewProcessSeesTheHistory(t *testing.T) {
	t.Parallel()
	r := newClaudeACPRig(t, nil)
	workdir := t.TempDir()
	s, rec := r.open(t, workdir, "", nil)
	geminiTurn(t, s, rec, "remember the word pelican")
	saved := rec.WaitReady(t).RuntimeSessionID
	// Graceful, as the host closes an idle session: claude-code-acp does
	// not exit at the end of its input, so the backend ends it with
	// SIGTERM after exitGrace, long before the host's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx, sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*exitGrace {
		t.Errorf("the graceful close took %v", took)
	}
	if evs := rec.WaitExited(t); evs[len(evs)-1].Exited.Signal == "SIGKILL" {
		t.Errorf("claude-code-acp had to be killed: %+v", *evs[len(evs)-1].Exited)
	}

	s2, rec2 := r.open(t, workdir, saved, nil)
	ready := rec2.WaitReady(t)
	if !ready.Resumed || ready.RuntimeSessionID != saved || ready.ContextLostReason != "" {
		t.Fatalf("SessionReady = %+v:\n%s", ready, sdktest.Dump(rec2.Events()))
	}
	id, c, evs := geminiTurn(t, s2, rec2, "REMEMBER")
	if out := sdktest.Output(evs, id); c.Status != sdk.StatusCompleted || out != "I remember: remember the word pelican" {
		t.Fatalf("resumed turn %+v, output %q (the replayed history must not be output):\n%s", c, out, sdktest.Dump(evs))
	}
	rootNotices(t, rec2.Events())

	_, rec3 := r.open(t, workdir, "00000000-dead-beef-0000-000000000000", nil)
	if r3 := rec3.WaitReady(t); r3.Resumed || r3.ContextLostReason == "" {
		t.Fatalf("unknown id: %+v", r3)
	}
}

// The plugin killed with SIGKILL during a turn: nothing it started
// (claude-code-acp, the Claude Code it runs) outlives it. The agent's
// leader dies with the plugin (Pdeathsig); the host kills what carries
// the plugin instance's token.
func TestRealClaudeCodeACPPluginKilledLeavesNoProcess(t *testing.T) {
	t.Parallel()
	r := newClaudeACPRig(t, nil)
	path := sdktest.Build(t, acpPkg, "tthost-backend-acp")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := client.Launch(ctx, client.Config{
		Path: path, Checksum: sdktest.SHA256File(t, path), HostVersion: "test",
		Env: conformanceEnv(r.procs), Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	env := acptest.ClaudeCodeACPEnv(r.home, r.mock)
	env[sdktest.MarkerEnv] = r.procs.Marker()
	sess, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "claude-acp", Command: r.bin, Workdir: t.TempDir(), Env: env, AgentName: "real"})
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan struct{})
	go func() {
		for e := range sess.Events() {
			if e.Kind == sdk.EventAssistantDelta {
				close(ticks)
				for range sess.Events() {
				}
				return
			}
		}
	}()
	if _, err := sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "a SLOW_STREAM please"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ticks:
	case <-ctx.Done():
		t.Fatal("no output from claude-code-acp")
	}
	if n := len(r.procs.Alive()); n < 2 {
		t.Fatalf("%d processes of the session before the kill; want claude-code-acp and Claude Code", n)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	assertGone(t, r.procs)
}
