package main

import (
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
