package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The Claude backend driving the real Claude Code 2.1.330, offline against
// claudetest's MockAnthropic.

func TestRealClaudeTextTurnsInOneProcess(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	s, rec := c.open(t, procs, openOpts{})
	ready := rec.WaitReady(t)
	if ready.RuntimeSessionID == "" || ready.Resumed || ready.ContextLostReason != "" {
		t.Fatalf("ready %+v", ready)
	}
	pid := pidOf(s)
	id1, c1, evs := runTurn(t, s, rec, "hello claude")
	if c1.Status != sdk.StatusCompleted || sdktest.Output(evs, id1) != "echo: hello claude" || c1.Summary != "echo: hello claude" {
		t.Fatalf("turn 1: %+v, output %q\n%s", c1, sdktest.Output(evs, id1), sdktest.Dump(evs))
	}
	u1 := sdktest.OfKind(evs, sdk.EventUsage, id1)
	id2, c2, evs := runTurn(t, s, rec, "second turn")
	if c2.Status != sdk.StatusCompleted || sdktest.Output(evs, id2) != "echo: second turn" {
		t.Fatalf("turn 2: %+v, output %q", c2, sdktest.Output(evs, id2))
	}
	if got := pidOf(s); got != pid {
		t.Errorf("turn 2 ran in pid %d, turn 1 in %d", got, pid)
	}
	// Usage is per turn: each turn's input is what its one request
	// reported, not a running total.
	u2 := sdktest.OfKind(evs, sdk.EventUsage, id2)
	reqs := c.mock.TurnRequests()
	if len(u1) != 1 || len(u2) != 1 || len(reqs) != 2 {
		t.Fatalf("usage events %d, %d; requests %d", len(u1), len(u2), len(reqs))
	}
	for i, u := range []*sdk.Usage{u1[0].Usage, u2[0].Usage} {
		if u.InputTokens != reqs[i].Usage.InputTokens || u.OutputTokens < 1 || u.TotalTokens != u.InputTokens+u.OutputTokens {
			t.Errorf("turn %d usage %+v, the mock reported %+v", i+1, *u, reqs[i].Usage)
		}
	}
	if !reqs[1].Contains("hello claude") {
		t.Errorf("turn 2's request lacks turn 1's history")
	}
}

func TestRealClaudeToolTurn(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	s, rec := c.open(t, procs, openOpts{})
	id, comp, evs := runTurn(t, s, rec, "run it "+claudetest.MarkToolCall)
	if comp.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, id), "tool output: hi") {
		t.Fatalf("%+v, output %q\n%s", comp, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	calls := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(calls) != 2 || calls[0].Tool.Status != "in_progress" || calls[1].Tool.Status != "completed" ||
		calls[1].Tool.Kind != "command" || calls[1].Tool.Name != "echo hi" {
		t.Errorf("tool calls:\n%s", sdktest.Dump(calls))
	}
}

// TestRealClaudeSteerFoldedAtToolBoundary: text steered while a tool runs
// reaches the model in the next request of the same turn, and the turn
// ends once, after it.
func TestRealClaudeSteerFoldedAtToolBoundary(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	s, rec := c.open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "work " + claudetest.MarkSteerTool}, sdk.DeliveryStarted)
	// The tool is running once claude reported the call.
	rec.WaitFor(t, "the tool call", func(evs []sdk.Event) bool { return len(sdktest.OfKind(evs, sdk.EventToolCall, id)) > 0 })
	if got := send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "also mention redis"}, sdk.DeliverySteered); got != id {
		t.Fatalf("steered into %s, want %s", got, id)
	}
	comp, evs := rec.WaitCompleted(t, id)
	if comp.Status != sdk.StatusCompleted || !strings.Contains(sdktest.Output(evs, id), "steered: also mention redis") {
		t.Fatalf("%+v, output %q\n%s", comp, sdktest.Output(evs, id), sdktest.Dump(evs))
	}
	if codes := errorsOf(evs, id); len(codes) != 0 {
		t.Errorf("errors %v for a folded steer", codes)
	}
	req, err := c.mock.WaitRequest(waitCtx(t), func(r claudetest.Request) bool { return len(r.Steers()) > 0 })
	if err != nil || !strings.Contains(req.Steers()[0], "also mention redis") || len(req.ToolResults()) == 0 {
		t.Fatalf("the mock did not see the steered text beside the tool result: %v", err)
	}
	if n := len(sdktest.OfKind(rec.Events(), sdk.EventTurnStarted, "")); n != 1 {
		t.Errorf("%d turns started", n)
	}
}

// TestRealClaudeSteerQueuedAsFollowUp: text steered into a reply with no
// tool boundary runs as claude's follow-up turn; the tthost turn says so
// and ends after it.
func TestRealClaudeSteerQueuedAsFollowUp(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	release := make(chan struct{})
	c := newRealClaude(t, func(req claudetest.Request) claudetest.Reply {
		if strings.Contains(req.LastUserText(), "HOLD") {
			return claudetest.Reply{Text: "holding ", Hold: release}
		}
		return claudetest.DefaultScript(req)
	})
	s, rec := c.open(t, procs, openOpts{})
	id := send(t, s, sdk.Input{Text: "HOLD please"}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "holding")
	send(t, s, sdk.Input{Kind: sdk.InputUrgent, Text: "steered later"}, sdk.DeliverySteered)
	close(release)
	comp, evs := rec.WaitCompleted(t, id)
	out := sdktest.Output(evs, id)
	if comp.Status != sdk.StatusCompleted || !strings.Contains(out, "holding") || !strings.Contains(out, "echo: steered later") {
		t.Fatalf("%+v, output %q\n%s", comp, out, sdktest.Dump(evs))
	}
	if codes := errorsOf(evs, id); len(codes) != 1 || codes[0] != "steer_queued" {
		t.Errorf("errors %v, want [steer_queued]", codes)
	}
	if len(sdktest.OfKind(evs, sdk.EventUsage, id)) != 2 {
		t.Errorf("want a usage event per CLI turn:\n%s", sdktest.Dump(evs))
	}
}

// TestRealClaudeInterruptThenNextTurn: a cancel ends a long streaming reply
// interrupted; the same process runs the next turn.
func TestRealClaudeInterruptThenNextTurn(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	s, rec := c.open(t, procs, openOpts{})
	pid := pidOf(s)
	id := send(t, s, sdk.Input{Text: "go " + claudetest.MarkSlowStream}, sdk.DeliveryStarted)
	rec.WaitOutput(t, id, "tick 3 ")
	send(t, s, sdk.Input{Kind: sdk.InputCancel}, sdk.DeliveryCancelled)
	comp, _ := rec.WaitCompleted(t, id)
	if comp.Status != sdk.StatusInterrupted {
		t.Fatalf("status %s", comp.Status)
	}
	if _, err := c.mock.WaitRequest(waitCtx(t), func(r claudetest.Request) bool { return r.Outcome == claudetest.OutcomeDisconnected }); err != nil {
		t.Errorf("claude did not drop the stream: %v", err)
	}
	ctx := waitCtx(t)
	if d, err := s.Send(ctx, sdk.Input{Kind: sdk.InputCancel}); err != nil || d.Kind != sdk.DeliveryNoTurn {
		t.Errorf("cancel after the end: %+v, %v", d, err)
	}
	id2, c2, evs := runTurn(t, s, rec, "after the interrupt")
	if c2.Status != sdk.StatusCompleted || sdktest.Output(evs, id2) != "echo: after the interrupt" || pidOf(s) != pid {
		t.Fatalf("next turn %+v %q, pid %d (was %d)", c2, sdktest.Output(evs, id2), pidOf(s), pid)
	}
}

// TestRealClaudeResume: a new process resumed with the saved id sends the
// earlier conversation; with its transcript gone the context is lost.
func TestRealClaudeResume(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	workdir := t.TempDir()
	s, rec := c.open(t, procs, openOpts{workdir: workdir})
	sid := rec.WaitReady(t).RuntimeSessionID
	runTurn(t, s, rec, "the word is pelican")
	if err := s.Close(waitCtx(t), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}

	s2, rec2 := c.open(t, procs, openOpts{workdir: workdir, resumeID: sid})
	ready := rec2.WaitReady(t)
	if !ready.Resumed || ready.RuntimeSessionID != sid || ready.ContextLostReason != "" {
		t.Fatalf("ready %+v, want resumed %s", ready, sid)
	}
	id, _, evs := runTurn(t, s2, rec2, claudetest.MarkRemember)
	if out := sdktest.Output(evs, id); !strings.Contains(out, "the word is pelican") {
		t.Fatalf("the resumed session did not send its history: %q", out)
	}
	if err := s2.Close(waitCtx(t), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}

	// claude keeps transcripts under HOME/.claude/projects.
	if err := os.RemoveAll(filepath.Join(c.home, ".claude", "projects")); err != nil {
		t.Fatal(err)
	}
	s3, rec3 := c.open(t, procs, openOpts{workdir: workdir, resumeID: sid})
	ready = rec3.WaitReady(t)
	if ready.Resumed || ready.RuntimeSessionID == "" || ready.RuntimeSessionID == sid ||
		!strings.Contains(ready.ContextLostReason, "No conversation found") {
		t.Fatalf("ready %+v, want a fresh session with the context lost", ready)
	}
	id, comp, evs := runTurn(t, s3, rec3, "fresh start")
	if comp.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: fresh start" {
		t.Fatalf("the fresh session's turn: %+v %q", comp, sdktest.Output(evs, id))
	}
}

// TestRealClaudeApprovalDenied: in prompt mode a denied Write creates no
// file, and the Approval event says what was denied.
func TestRealClaudeApprovalDenied(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	workdir := t.TempDir()
	target := filepath.Join(workdir, "made_by_tool.txt")
	c := newRealClaude(t, func(req claudetest.Request) claudetest.Reply {
		if strings.Contains(req.LastUserText(), "WRITE") {
			if res := req.ToolResults(); len(res) > 0 {
				return claudetest.Reply{Text: "result: " + res[0].Text}
			}
			return claudetest.Reply{ToolUse: &claudetest.ToolUse{Name: "Bash",
				Input: `{"command":"touch made_by_tool.txt","description":"create file"}`}}
		}
		return claudetest.DefaultScript(req)
	})
	s, rec := c.open(t, procs, openOpts{workdir: workdir, options: map[string]string{
		optPermissionMode: permPrompt, optToolApproval: "deny"}})
	id, comp, evs := runTurn(t, s, rec, "WRITE a file")
	if comp.Status != sdk.StatusCompleted {
		t.Fatalf("%+v\n%s", comp, sdktest.Dump(evs))
	}
	apps := sdktest.OfKind(evs, sdk.EventApproval, id)
	if len(apps) != 1 || apps[0].Approval.Decision != "denied" || !strings.Contains(apps[0].Approval.Description, "touch made_by_tool.txt") {
		t.Fatalf("approvals:\n%s", sdktest.Dump(evs))
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("the denied command ran: %v", err)
	}
	calls := sdktest.OfKind(evs, sdk.EventToolCall, id)
	if len(calls) != 2 || calls[1].Tool.Status != "failed" {
		t.Errorf("tool calls:\n%s", sdktest.Dump(calls))
	}
}

// TestRealClaudeAPIRetry: an overloaded API is retried by claude, and each
// retry reaches the host as a non-fatal api_retry Error of the turn.
func TestRealClaudeAPIRetry(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, func(req claudetest.Request) claudetest.Reply {
		if req.Seq == 1 {
			return claudetest.Reply{Status: 529, ErrorType: "overloaded_error"}
		}
		return claudetest.DefaultScript(req)
	})
	s, rec := c.open(t, procs, openOpts{})
	id, comp, evs := runTurn(t, s, rec, "after an outage")
	if comp.Status != sdk.StatusCompleted || sdktest.Output(evs, id) != "echo: after an outage" {
		t.Fatalf("%+v %q", comp, sdktest.Output(evs, id))
	}
	retries := 0
	for _, e := range sdktest.OfKind(evs, sdk.EventError, id) {
		if e.Error.Code == "api_retry" && !e.Error.Fatal && strings.Contains(e.Error.Message, "529") {
			t.Logf("api_retry: %s", e.Error.Message)
			retries++
		}
	}
	if retries != 1 {
		t.Errorf("%d api_retry errors:\n%s", retries, sdktest.Dump(evs))
	}
}

// TestRealClaudeCostIsPerTurn: claude's total_cost_usd is the process's
// running total; each turn's transcript says that turn's share.
func TestRealClaudeCostIsPerTurn(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	s, rec := c.open(t, procs, openOpts{})
	dir := t.TempDir()
	var costs []float64
	for i, text := range []string{"one", "two"} {
		path := filepath.Join(dir, text+".log")
		id := send(t, s, sdk.Input{Text: text, TranscriptPath: path}, sdk.DeliveryStarted)
		rec.WaitCompleted(t, id)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var delta, turn float64
		if _, err := fmt.Sscanf(lineWith(string(b), "cost $"), "[claude turn success: cost $%f (this turn $%f)]", &delta, &turn); err != nil {
			t.Fatalf("turn %d transcript %q: %v", i+1, b, err)
		}
		costs = append(costs, turn)
	}
	// Two alike turns cost about the same; a running total would double.
	if costs[0] <= 0 || costs[1] > 1.5*costs[0] {
		t.Errorf("turn costs %v: not per turn", costs)
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
