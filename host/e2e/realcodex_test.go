package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/plugins/codex/codextest"
)

// realCodexEnv is a town whose `codex` and `codex-mini` CLIs are the real
// Codex CLI (0.169.0, installed by `make test`), run by tthost's Codex
// backend through `tthost agent-loop`, fully offline against a mock model
// server on 127.0.0.1. The CLI commands are Tinytown's presets with the
// binary's path: the plugin turns them into `codex app-server` and keeps
// their configuring flags.
type realCodex struct {
	*env
	mock *codextest.MockModel
	home string
}

func realCodexEnv(t *testing.T, script codextest.Script, opts map[string]string) *realCodex {
	t.Helper()
	e := newEnv(t)
	bin := codextest.CodexBinary(t)
	mock := codextest.NewMockModel(t, script)
	home := codextest.NewCodexHome(t, mock)
	e.cfg.DefaultCLI = "codex"
	e.cfg.Agent.Persistent = true
	e.cfg.AgentCLIs["codex"] = config.AgentCLI{Name: "codex", Command: bin + " exec --dangerously-bypass-approvals-and-sandbox", Env: map[string]string{}}
	e.cfg.AgentCLIs["codex-mini"] = config.AgentCLI{Name: "codex-mini", Env: map[string]string{},
		Command: bin + ` exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`}
	backendOpts := map[string]string{"codex_home": home}
	for k, v := range opts {
		backendOpts[k] = v
	}
	e.cfg.TTHost.Backends = map[string]map[string]string{"codex": backendOpts}
	e.saveConfig()
	e.extraEnv = append(e.extraEnv, codextest.Env(home)...)
	return &realCodex{env: e, mock: mock, home: home}
}

func (r *realCodex) agent(name, cli string) *town.Agent {
	r.t.Helper()
	a, err := r.store.CreateAgent(r.ctx(), town.AgentSpec{Name: name, CLI: cli})
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// modelRequests are the mock's requests whose last user message holds
// marker.
func (r *realCodex) modelRequests(marker string) []codextest.Request {
	var out []codextest.Request
	for _, q := range r.mock.Requests() {
		if strings.Contains(q.LastUserText(), marker) {
			out = append(out, q)
		}
	}
	return out
}

const codexTimeout = 90 * time.Second

func TestRealCodexTurnsThroughAgentLoop(t *testing.T) {
	r := realCodexEnv(t, nil, nil)
	a := r.agent("coder", "codex")
	r.send(a.ID, "FIRST_TEXT say hello")
	p := r.agentLoop(a, 2)
	r.waitEvent(a.ID, codexTimeout, "round 1 completed", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted && strings.HasPrefix(ev.Message, "Round 1 completed")
	})
	r.send(a.ID, "SECOND TOOL_CALL please run something")
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	dump := r.dumpEvents(a.ID)
	// A text turn reaches the model and its answer streams back.
	if reqs := r.modelRequests("FIRST_TEXT"); len(reqs) != 1 || reqs[0].Model != codextest.MockModelName {
		t.Errorf("model requests for the first turn: %d (model %v)", len(reqs), reqs)
	}
	if !strings.Contains(dump, "Assistant delta: echo: # Agent: coder") {
		t.Errorf("the model's answer did not reach the event stream:\n%s", dump)
	}
	// The tool turn ran a real shell command: a tool_call event.
	if !strings.Contains(dump, "agent_tool_call") || !strings.Contains(dump, "echo hi") {
		t.Errorf("no tool call event for the shell command:\n%s", dump)
	}
	// Both turns on one app-server process and one thread.
	if len(r.modelRequests("SECOND")) < 2 {
		t.Errorf("the tool turn did not send the tool output back to the model")
	}
	got := r.getAgent(a.ID)
	if got.RoundsCompleted != 2 || got.RuntimeSessionID == "" || got.State != town.StateStopped {
		t.Errorf("rounds %d runtime_session_id %q state %s", got.RoundsCompleted, got.RuntimeSessionID, got.State)
	}
	threads := map[string]bool{}
	for _, q := range r.mock.Requests() {
		threads[q.Header.Get("thread-id")] = true
	}
	if len(threads) != 1 {
		t.Errorf("turns ran on %d threads, want 1 (one app-server session): %v", len(threads), threads)
	}
}

func TestRealCodexUrgentMessageIsSteeredIntoTheRunningTurn(t *testing.T) {
	r := realCodexEnv(t, nil, nil)
	a := r.agent("steered", "codex")
	r.send(a.ID, "LONG_ANSWER SLOW_STREAM")
	p := r.agentLoop(a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), codexTimeout)
	defer cancel()
	if _, err := r.mock.WaitRequest(ctx, func(q codextest.Request) bool { return strings.Contains(q.LastUserText(), "LONG_ANSWER") }); err != nil {
		t.Fatalf("the turn never reached the model: %v", err)
	}
	if err := r.store.SendUrgent(r.ctx(), town.NewQuery(town.SupervisorID, a.ID, "URGENT_CHANGE of plans")); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	// Codex drops the stream and asks the model again with both messages.
	steered := r.modelRequests("URGENT_CHANGE")
	if len(steered) == 0 {
		t.Fatalf("the urgent message never reached the model; requests: %d", len(r.mock.Requests()))
	}
	users := steered[len(steered)-1].UserTexts()
	if len(users) < 2 || !strings.Contains(users[len(users)-2], "LONG_ANSWER") {
		t.Errorf("the steered request does not carry the running turn's message first: %q", users)
	}
	got := r.getAgent(a.ID)
	if got.RoundsCompleted != 1 {
		t.Errorf("rounds %d, want 1: a steer adds no round", got.RoundsCompleted)
	}
	if !strings.Contains(r.dumpEvents(a.ID), "Steered 1 urgent message(s) into round 1") {
		t.Errorf("no steer event:\n%s", r.dumpEvents(a.ID))
	}
}

func TestRealCodexStopInterruptsALongTurnAndRequeues(t *testing.T) {
	r := realCodexEnv(t, nil, nil)
	a := r.agent("stopped", "codex")
	m := r.send(a.ID, "ENDLESS SLOW_STREAM")
	p := r.agentLoop(a, 5)
	ctx, cancel := context.WithTimeout(context.Background(), codexTimeout)
	defer cancel()
	if _, err := r.mock.WaitRequest(ctx, func(q codextest.Request) bool { return strings.Contains(q.LastUserText(), "ENDLESS") }); err != nil {
		t.Fatalf("the turn never reached the model: %v", err)
	}
	stopAt := time.Now()
	if err := r.store.RequestStop(r.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	t.Logf("stop request to agent-loop exit: %v", time.Since(stopAt))
	msgs, _, _ := r.store.PeekInbox(context.Background(), a.ID, 10)
	if len(msgs) != 1 || msgs[0].ID != m.ID {
		t.Errorf("the interrupted message is not back in the inbox: %v", msgs)
	}
	if !strings.Contains(r.dumpEvents(a.ID), "Round 1 interrupted (stop)") {
		t.Errorf("no interrupted turn event:\n%s", r.dumpEvents(a.ID))
	}
}

func TestRealCodexNewWorkerResumesTheSavedThread(t *testing.T) {
	r := realCodexEnv(t, nil, nil)
	a := r.agent("memory", "codex")
	r.send(a.ID, "ORIGINAL_FACT the sky is green")
	p := r.agentLoop(a, 1)
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("first worker exit %d:\n%s", code, p.out.String())
	}
	thread := r.getAgent(a.ID).RuntimeSessionID
	if thread == "" {
		t.Fatal("no runtime_session_id saved")
	}
	r.send(a.ID, "REMEMBER what was said")
	p2 := r.agentLoop(a, 1)
	if code := p2.wait(t, codexTimeout); code != 0 {
		t.Fatalf("second worker exit %d:\n%s", code, p2.out.String())
	}
	reqs := r.modelRequests("REMEMBER")
	if len(reqs) != 1 {
		t.Fatalf("%d model requests for the resumed turn", len(reqs))
	}
	if !strings.Contains(strings.Join(reqs[0].UserTexts(), "\n"), "ORIGINAL_FACT") {
		t.Errorf("the resumed thread did not carry its history to the model: %q", reqs[0].UserTexts())
	}
	if got := reqs[0].Header.Get("thread-id"); got != thread {
		t.Errorf("resumed on thread %q, want the saved %q", got, thread)
	}
	if !strings.Contains(p2.out.String(), "Resuming the saved runtime session "+thread) {
		t.Errorf("the second worker did not say it resumed:\n%s", p2.out.String())
	}
}

func TestRealCodexApprovalIsAnsweredByPolicy(t *testing.T) {
	r := realCodexEnv(t, nil, map[string]string{"approval_policy": "untrusted", "sandbox": "read-only", "command_approval": "accept"})
	a := r.agent("careful", "codex")
	r.send(a.ID, "GUARDED TOOL_CALL")
	p := r.agentLoop(a, 1)
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	dump := r.dumpEvents(a.ID)
	if !strings.Contains(dump, "Approval approved") {
		t.Errorf("no approval event decided by policy:\n%s", dump)
	}
	if got := r.getAgent(a.ID); got.RoundsCompleted != 1 {
		t.Errorf("the turn did not complete after the approval: rounds %d", got.RoundsCompleted)
	}
}

func TestRealCodexMiniSendsItsModelAndEffort(t *testing.T) {
	r := realCodexEnv(t, nil, nil)
	a := r.agent("mini", "codex-mini")
	r.send(a.ID, "MINI_TURN hello")
	p := r.agentLoop(a, 1)
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	reqs := r.modelRequests("MINI_TURN")
	if len(reqs) != 1 || reqs[0].Model != "gpt-5.4-mini" || reqs[0].ReasoningEffort != "medium" {
		var got []string
		for _, q := range reqs {
			got = append(got, q.Model+"/"+q.ReasoningEffort)
		}
		t.Errorf("codex-mini requests (model/effort): %v; want gpt-5.4-mini/medium", got)
	}
}
