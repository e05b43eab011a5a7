package e2e

import (
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/plugins/acp/acptest"
)

// realGemini is a town whose `gemini` CLI is the real Gemini CLI (0.61.0,
// installed by `make ensure-gemini`) with [agent] persistent = true, so
// tthost's ACP backend serves it (`gemini --acp`, one process and one ACP
// session per agent) through `tthost agent-loop`, fully offline against
// acptest's MockGemini on 127.0.0.1. The CLI command is Tinytown's preset
// `gemini` with the binary's path; the backend adds --acp. Gemini's
// environment (an empty scratch HOME, a dummy key, the mock's URL, the
// proxy guard) is the worker's, which the plugin and gemini inherit.
type realGemini struct {
	*env
	mock *acptest.MockGemini
	home string
}

// geminiTimeout bounds one step with gemini: it takes a few seconds to
// start, more under -race on a small shared machine.
const geminiTimeout = 120 * time.Second

// geminiResumeTimeout bounds a step that loads a saved session: the
// backend's minute guard makes a load within the minute the session was
// written wait for the minute to turn (up to a minute more).
const geminiResumeTimeout = geminiTimeout + 70*time.Second

func realGeminiEnv(t *testing.T, script acptest.Script, options map[string]string) *realGemini {
	t.Helper()
	e := newEnv(t)
	bin := acptest.GeminiBinary(t)
	mock := acptest.NewMockGemini(t, script)
	t.Cleanup(func() {
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("gemini sent requests the mock does not serve: %v", other)
		}
	})
	home := acptest.NewGeminiHome(t)
	e.cfg.DefaultCLI = "gemini"
	e.cfg.Agent.Persistent = true
	e.cfg.AgentCLIs["gemini"] = config.AgentCLI{Name: "gemini", Command: bin, Env: map[string]string{}, Options: options}
	e.saveConfig()
	genv := acptest.GeminiEnv(home, mock)
	for _, k := range slices.Sorted(maps.Keys(genv)) {
		e.extraEnv = append(e.extraEnv, k+"="+genv[k])
	}
	return &realGemini{env: e, mock: mock, home: home}
}

func (r *realGemini) agent(name string) *town.Agent {
	r.t.Helper()
	a, err := r.store.CreateAgent(r.ctx(), town.AgentSpec{Name: name, CLI: "gemini"})
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// modelRequests are the mock's streamGenerateContent requests whose last
// user text holds marker.
func (r *realGemini) modelRequests(marker string) []acptest.Request {
	var out []acptest.Request
	for _, q := range r.mock.Requests() {
		if strings.Contains(q.LastUserText(), marker) {
			out = append(out, q)
		}
	}
	return out
}

func TestRealGeminiACPTwoTurnsInOneProcess(t *testing.T) {
	r := realGeminiEnv(t, nil, nil)
	a := r.agent("coder")
	sid := r.twoTurnsInOneProcess(a, geminiTimeout, "acp", "queue")
	dump := r.dumpEvents(a.ID)
	if reqs := r.modelRequests("FIRST_TEXT"); len(reqs) != 1 {
		t.Errorf("%d model requests for the first turn, want 1", len(reqs))
	}
	if !strings.Contains(dump, "Assistant delta: echo: # Agent: coder") {
		t.Errorf("the model's answer did not reach the event stream:\n%s", dump)
	}
	// The tool turn ran a real shell command, and its result went back to
	// the model in the same chat as the first turn: one ACP session.
	if !strings.Contains(dump, "agent_tool_call") || !strings.Contains(dump, "echo hi") {
		t.Errorf("no tool call event for the shell command:\n%s", dump)
	}
	second := r.modelRequests("SECOND")
	if len(second) != 2 || len(second[1].ResponsesSinceLastUser()) == 0 {
		t.Errorf("the tool turn made %d model requests, want 2 (the call, then its result)", len(second))
	}
	for _, q := range second {
		if !strings.Contains(strings.Join(q.UserTexts(), "\n"), "FIRST_TEXT") {
			t.Errorf("the second turn's request %d does not carry the first turn: not one session", q.Seq)
		}
	}
	rec, err := r.store.Runtime(r.ctx(), a.ID)
	if err != nil || rec == nil || rec.Backend != "acp" || !rec.Persistent || rec.Fallback || rec.SessionID != sid || rec.SteerMode != "queue" {
		t.Errorf("runtime record %+v (%v)", rec, err)
	}
}

// steerScript answers SLOW_STREAM with a stream of n ticks, so that a
// queued steer waits for a prompt that ends by itself.
func steerScript(n int) acptest.Script {
	return func(q acptest.Request) acptest.Reply {
		if last := q.LastUserText(); strings.Contains(last, acptest.MarkSlowStream) && !strings.Contains(last, acptest.MarkUrgent) {
			return acptest.SlowReply(n, acptest.SlowInterval)
		}
		return acptest.DefaultScript(q)
	}
}

// steerDuringLongTurn runs one round whose prompt streams slowly, sends an
// urgent message once the first tick reached the event stream, and waits
// for the worker to finish the round.
func (r *realGemini) steerDuringLongTurn(name string) *town.Agent {
	r.t.Helper()
	a := r.agent(name)
	r.send(a.ID, "LONG_ANSWER SLOW_STREAM")
	p := r.agentLoop(a, 1)
	r.waitEvent(a.ID, geminiTimeout, "a tick of the long answer", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentAssistantDelta && strings.Contains(ev.Message, "tick")
	})
	if err := r.store.SendUrgent(r.ctx(), town.NewQuery(town.SupervisorID, a.ID, "URGENT_CHANGE of plans")); err != nil {
		r.t.Fatal(err)
	}
	if code := p.wait(r.t, geminiTimeout); code != 0 {
		r.t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	got := r.getAgent(a.ID)
	if got.RoundsCompleted != 1 {
		r.t.Errorf("rounds %d, want 1: a steer adds no round", got.RoundsCompleted)
	}
	if n := r.inboxLen(a.ID) + r.inFlightLen(a.ID); n != 0 {
		r.t.Errorf("%d message(s) left; the steered message is settled with its round", n)
	}
	if n, err := r.store.UrgentLen(r.ctx(), a.ID); err != nil || n != 0 {
		r.t.Errorf("%d urgent message(s) left (%v)", n, err)
	}
	if n := r.countEvents(a.ID, "Round 1 completed"); n != 1 {
		r.t.Errorf("%d 'Round 1 completed' events, want 1", n)
	}
	return a
}

// urgentAnswer is MockGemini's answer to a prompt holding the steered
// query (the host renders it as an [URGENT] item).
const urgentAnswer = "Assistant delta: urgent: 1. [URGENT] from supervisor: question: URGENT_CHANGE of plans"

func TestRealGeminiACPUrgentMessageIsQueuedIntoTheRound(t *testing.T) {
	// 100 ticks 50 ms apart: 5 s, long enough to steer into, short enough
	// that the queued prompt follows soon.
	r := realGeminiEnv(t, steerScript(100), nil)
	a := r.steerDuringLongTurn("queued")
	slow := r.modelRequests("LONG_ANSWER")
	urgent := r.modelRequests("URGENT_CHANGE")
	if len(slow) != 1 || len(urgent) != 1 {
		t.Fatalf("model requests: %d for the long prompt, %d for the urgent one; want 1 and 1", len(slow), len(urgent))
	}
	// Queue: the running prompt ran to its end, then the urgent text was
	// prompted on its own, in the same session.
	if slow[0].Outcome != acptest.OutcomeCompleted || urgent[0].Seq < slow[0].Seq {
		t.Errorf("the long prompt ended %s (request %d), the urgent one is request %d: want completed, then the urgent one", slow[0].Outcome, slow[0].Seq, urgent[0].Seq)
	}
	last := urgent[0].LastUserText()
	if strings.Contains(last, "LONG_ANSWER") || !strings.Contains(strings.Join(urgent[0].UserTexts(), "\n"), "LONG_ANSWER") {
		t.Errorf("the queued prompt must be the urgent text alone, after the long prompt in the same chat: %q", urgent[0].UserTexts())
	}
	dump := r.dumpEvents(a.ID)
	if !strings.Contains(dump, "Steered 1 urgent message(s) into round 1 (queued:") {
		t.Errorf("no queued steer event:\n%s", dump)
	}
	if !strings.Contains(dump, urgentAnswer) {
		t.Errorf("the answer to the urgent message did not reach the event stream:\n%s", dump)
	}
}

func TestRealGeminiACPUrgentMessageRestartsThePromptWhenConfigured(t *testing.T) {
	r := realGeminiEnv(t, nil, map[string]string{"steer_mode": "restart"})
	a := r.steerDuringLongTurn("restarted")
	slow := r.modelRequests("LONG_ANSWER")
	if len(slow) != 2 {
		t.Fatalf("%d model requests carry the long prompt, want 2 (the cancelled one, then the merged one)", len(slow))
	}
	// Restart: the running prompt was cancelled (gemini dropped the
	// stream) and prompted again with the urgent text merged in.
	if slow[0].Outcome != acptest.OutcomeDisconnected {
		t.Errorf("the running prompt ended %s, want disconnected (cancelled)", slow[0].Outcome)
	}
	if merged := slow[1].LastUserText(); !strings.Contains(merged, "URGENT_CHANGE") {
		t.Errorf("the restarted prompt does not merge the urgent text: %q", merged)
	}
	if n := len(r.modelRequests("URGENT_CHANGE")); n != 1 {
		t.Errorf("%d model requests carry the urgent text, want 1", n)
	}
	dump := r.dumpEvents(a.ID)
	if !strings.Contains(dump, "Steered 1 urgent message(s) into round 1 (restart:") {
		t.Errorf("no restart steer event:\n%s", dump)
	}
	if !strings.Contains(dump, urgentAnswer) {
		t.Errorf("the answer to the merged prompt did not reach the event stream:\n%s", dump)
	}
	if !strings.Contains(dump, "urgent messages steered (restart)") {
		t.Errorf("the session_ready event does not say restart:\n%s", dump)
	}
	if rec, err := r.store.Runtime(r.ctx(), a.ID); err != nil || rec == nil || rec.SteerMode != "restart" {
		t.Errorf("runtime record %+v (%v); want steer mode restart from [agent_clis.gemini.options]", rec, err)
	}
}

func TestRealGeminiACPStopInterruptsALongTurnAndRequeues(t *testing.T) {
	r := realGeminiEnv(t, nil, nil)
	r.stopDuringALongTurn(r.agent("stopped"), geminiTimeout, "gemini over ACP")
	if reqs := r.modelRequests("ENDLESS"); len(reqs) != 1 || reqs[0].Outcome == acptest.OutcomeCompleted {
		t.Errorf("the long prompt: %d request(s), want 1 cut short", len(reqs))
	}
}

func TestRealGeminiACPNewWorkerResumesTheSessionWithItsHistory(t *testing.T) {
	r := realGeminiEnv(t, nil, nil)
	a := r.agent("memory")
	// gemini's session was written within this minute, most likely: the
	// backend's load waits for the minute to turn.
	r.resumedBySecondWorker(a, "acp", geminiTimeout, geminiResumeTimeout)
	reqs := r.modelRequests("REMEMBER")
	if len(reqs) != 1 {
		t.Fatalf("%d model requests for the resumed turn, want 1", len(reqs))
	}
	if !strings.Contains(strings.Join(reqs[0].UserTexts(), "\n"), "ORIGINAL_FACT") {
		t.Errorf("the resumed session did not carry its history to the model: %q", reqs[0].UserTexts())
	}
	if dump := r.dumpEvents(a.ID); !strings.Contains(dump, "I remember: ") {
		t.Errorf("the model's answer did not reach the event stream:\n%s", dump)
	}
}

func TestRealGeminiACPKilledCLIIsRestartedAndTheMessageDeliveredAgain(t *testing.T) {
	// The first attempt streams for 20 s (killed long before); the second
	// is answered at once.
	var attempts atomic.Int32
	script := func(q acptest.Request) acptest.Reply {
		if strings.Contains(q.LastUserText(), "SURVIVE") && attempts.Add(1) == 1 {
			return acptest.SlowReply(acptest.SlowDeltas, acptest.SlowInterval)
		}
		return acptest.DefaultScript(q)
	}
	r := realGeminiEnv(t, script, nil)
	a := r.agent("crashy")
	m := r.killCLIMidTurn(a, "gemini", geminiTimeout, geminiResumeTimeout)
	reqs := r.modelRequests("SURVIVE")
	if len(reqs) != 2 || reqs[0].Outcome == acptest.OutcomeCompleted || reqs[1].Outcome != acptest.OutcomeCompleted {
		var outcomes []acptest.Outcome
		for _, q := range reqs {
			outcomes = append(outcomes, q.Outcome)
		}
		t.Fatalf("model requests for the message: %v; want 2: the killed one, then the delivered one", outcomes)
	}
	r.deliveredOnceMore(a, m, "acp")
}
