package e2e

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/plugins/claude/claudetest"
)

// realClaude is a town whose `claude` CLI is the real Claude Code
// (2.1.330, installed by `make ensure-claude`) with [agent] persistent =
// true, so tthost's Claude backend serves it (one `claude -p
// --input-format stream-json --output-format stream-json` per agent)
// through `tthost agent-loop`, fully offline against claudetest's
// MockAnthropic on 127.0.0.1. The CLI command is Tinytown's preset
// (`claude --print --dangerously-skip-permissions`) with the binary's
// path. Claude's environment (an empty scratch HOME, the mock's URL, a
// dummy key, the proxy guard) is the worker's, which the plugin and
// claude inherit; as root the backend adds IS_SANDBOX=1 itself.
type realClaude struct {
	*env
	mock *claudetest.MockAnthropic
}

// claudeTimeout bounds one step with claude (it starts in about a second,
// more under -race on a small shared machine).
const claudeTimeout = 120 * time.Second

func realClaudeEnv(t *testing.T, script claudetest.Script) *realClaude {
	t.Helper()
	e := newEnv(t)
	bin := claudetest.Binary(t)
	mock := claudetest.NewMockAnthropic(t, script)
	home := claudetest.NewHome(t)
	e.cfg.DefaultCLI = "claude"
	e.cfg.Agent.Persistent = true
	e.cfg.AgentCLIs["claude"] = config.AgentCLI{Name: "claude", Command: bin + " --print --dangerously-skip-permissions", Env: map[string]string{}}
	e.saveConfig()
	e.extraEnv = append(e.extraEnv, claudetest.Env(home, mock)...)
	return &realClaude{env: e, mock: mock}
}

func (r *realClaude) agent(name string) *town.Agent {
	r.t.Helper()
	a, err := r.store.CreateAgent(r.ctx(), town.AgentSpec{Name: name, CLI: "claude"})
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// turnRequests are the mock's requests of the agent's turns (not claude's
// side requests) whose last user text holds marker.
func (r *realClaude) turnRequests(marker string) []claudetest.Request {
	var out []claudetest.Request
	for _, q := range r.mock.TurnRequests() {
		if strings.Contains(q.LastUserText(), marker) {
			out = append(out, q)
		}
	}
	return out
}

func TestRealClaudeTwoTurnsInOneProcess(t *testing.T) {
	r := realClaudeEnv(t, nil)
	a := r.agent("coder")
	r.twoTurnsInOneProcess(a, claudeTimeout, "claude", "native")
	dump := r.dumpEvents(a.ID)
	if reqs := r.turnRequests("FIRST_TEXT"); len(reqs) != 1 {
		t.Errorf("%d model requests for the first turn, want 1", len(reqs))
	}
	if !strings.Contains(dump, "Assistant delta: echo: # Agent: coder") {
		t.Errorf("the model's answer did not reach the event stream:\n%s", dump)
	}
	if !strings.Contains(dump, "agent_tool_call") || !strings.Contains(dump, "echo hi") || !strings.Contains(dump, "tool output: hi") {
		t.Errorf("the tool turn did not run `echo hi` and answer with its output:\n%s", dump)
	}
	second := r.turnRequests("SECOND")
	if len(second) != 2 || len(second[1].ToolResults()) == 0 {
		t.Errorf("the tool turn made %d model requests, want 2 (the call, then its result)", len(second))
	}
	for _, q := range second {
		if !q.Contains("FIRST_TEXT") {
			t.Errorf("the second turn's request %d does not carry the first turn: not one session", q.Seq)
		}
	}
}

func TestRealClaudeUrgentMessageIsSteeredIntoTheTurnAtAToolBoundary(t *testing.T) {
	r := realClaudeEnv(t, nil)
	a := r.agent("steered")
	// STEER_TOOL: the model calls `sleep 3`; the urgent message arrives
	// while it runs, and claude folds it into the tool result's request.
	r.send(a.ID, "LONG_WORK "+claudetest.MarkSteerTool)
	p := r.agentLoop(a, 1)
	r.waitEventType(a.ID, town.EventAgentToolCall, claudeTimeout)
	if err := r.store.SendUrgent(r.ctx(), town.NewQuery(town.SupervisorID, a.ID, "URGENT_CHANGE of plans")); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, claudeTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	reqs := r.turnRequests("LONG_WORK")
	if len(reqs) != 2 {
		t.Fatalf("%d model requests for the turn, want 2 (the tool call, then its result)", len(reqs))
	}
	// Native: the urgent text reached the model in the same turn's next
	// request, beside the tool's result, not as a turn of its own.
	steers := reqs[1].Steers()
	if len(steers) != 1 || !strings.Contains(steers[0], "URGENT_CHANGE of plans") || len(reqs[1].ToolResults()) == 0 {
		t.Errorf("the request after the tool: steers %q, %d tool results; want the urgent text beside the result", steers, len(reqs[1].ToolResults()))
	}
	if n := len(r.turnRequests("URGENT_CHANGE")); n != 0 {
		t.Errorf("%d requests prompt the urgent text as a turn of its own", n)
	}
	dump := r.dumpEvents(a.ID)
	if !strings.Contains(dump, "Steered 1 urgent message(s) into round 1\n") {
		t.Errorf("no native steer event (one that says neither queued nor restart):\n%s", dump)
	}
	if !strings.Contains(dump, "Assistant delta: steered: ") {
		t.Errorf("the model's answer to the steered text did not reach the event stream:\n%s", dump)
	}
	if strings.Contains(dump, "steer_queued") {
		t.Errorf("the steer was queued, not folded in:\n%s", dump)
	}
	got := r.getAgent(a.ID)
	if got.RoundsCompleted != 1 {
		t.Errorf("rounds %d, want 1: a steer adds no round", got.RoundsCompleted)
	}
	if n := r.inboxLen(a.ID) + r.inFlightLen(a.ID); n != 0 {
		t.Errorf("%d message(s) left; the steered message is settled with its round", n)
	}
	if n, err := r.store.UrgentLen(r.ctx(), a.ID); err != nil || n != 0 {
		t.Errorf("%d urgent message(s) left (%v)", n, err)
	}
	if n := r.countEvents(a.ID, "Round 1 completed"); n != 1 {
		t.Errorf("%d 'Round 1 completed' events, want 1", n)
	}
}

func TestRealClaudeStopInterruptsALongTurnAndRequeues(t *testing.T) {
	r := realClaudeEnv(t, nil)
	r.stopDuringALongTurn(r.agent("stopped"), claudeTimeout, "Claude Code")
	if reqs := r.turnRequests("ENDLESS"); len(reqs) != 1 || reqs[0].Outcome == claudetest.OutcomeCompleted {
		t.Errorf("the long prompt: %d request(s), want 1 cut short", len(reqs))
	}
}

func TestRealClaudeNewWorkerResumesTheSessionWithItsHistory(t *testing.T) {
	r := realClaudeEnv(t, nil)
	a := r.agent("memory")
	r.resumedBySecondWorker(a, "claude", claudeTimeout, claudeTimeout)
	reqs := r.turnRequests("REMEMBER")
	if len(reqs) != 1 {
		t.Fatalf("%d model requests for the resumed turn, want 1", len(reqs))
	}
	if !reqs[0].Contains("ORIGINAL_FACT") {
		t.Errorf("the resumed session did not carry its history to the model: %q", reqs[0].UserTexts())
	}
	if dump := r.dumpEvents(a.ID); !strings.Contains(dump, "Round 1 completed: I remember: # Agent: memory") {
		t.Errorf("the model's answer did not reach the event stream:\n%s", dump)
	}
}

func TestRealClaudeKilledCLIIsRestartedAndTheMessageDeliveredAgain(t *testing.T) {
	// The first attempt streams for 10 s (killed long before); the second
	// is answered at once.
	var attempts atomic.Int32
	script := func(q claudetest.Request) claudetest.Reply {
		if !q.IsSideRequest() && strings.Contains(q.LastUserText(), "SURVIVE") && attempts.Add(1) == 1 {
			return claudetest.SlowReply(claudetest.SlowDeltas, claudetest.SlowInterval)
		}
		return claudetest.DefaultScript(q)
	}
	r := realClaudeEnv(t, script)
	a := r.agent("crashy")
	m := r.killCLIMidTurn(a, "claude", claudeTimeout, claudeTimeout)
	reqs := r.turnRequests("SURVIVE")
	if len(reqs) != 2 || reqs[0].Outcome == claudetest.OutcomeCompleted || reqs[1].Outcome != claudetest.OutcomeCompleted {
		var outcomes []claudetest.Outcome
		for _, q := range reqs {
			outcomes = append(outcomes, q.Outcome)
		}
		t.Fatalf("model requests for the message: %v; want 2: the killed one, then the delivered one", outcomes)
	}
	r.deliveredOnceMore(a, m, "claude")
}

// Without persistent, Tinytown's claude preset runs one-shot through the
// fallback, with the real claude; as root (CI's machines) the one-shot
// backend gives it IS_SANDBOX=1 and says so, or claude would refuse
// --dangerously-skip-permissions and fail every turn.
func TestRealClaudeOneShotFallbackCompletesItsTurn(t *testing.T) {
	r := realClaudeEnv(t, nil)
	r.cfg.Agent.Persistent = false
	r.saveConfig()
	a := r.agent("plain")
	r.send(a.ID, "ONESHOT_TEXT say hello")
	p := r.agentLoop(a, 1)
	if code := p.wait(t, claudeTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if got := r.getAgent(a.ID); got.RoundsCompleted != 1 {
		t.Fatalf("rounds %d, want 1:\n%s", got.RoundsCompleted, r.dumpEvents(a.ID))
	}
	if reqs := r.turnRequests("ONESHOT_TEXT"); len(reqs) != 1 {
		t.Errorf("%d model requests for the turn, want 1", len(reqs))
	}
	dump := r.dumpEvents(a.ID)
	if !strings.Contains(dump, "Runtime: oneshot backend") || !strings.Contains(dump, "Assistant delta: echo: # Agent: plain") {
		t.Errorf("not a one-shot turn that reached the model and back:\n%s", dump)
	}
	if root := os.Geteuid() == 0; strings.Contains(dump, "IS_SANDBOX=1 was set for claude") != root {
		t.Errorf("root %v, but the IS_SANDBOX notice is %s in:\n%s", root, map[bool]string{true: "missing", false: "present"}[root], dump)
	}
}
