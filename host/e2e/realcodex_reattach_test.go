package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/plugins/codex/codextest"
	"github.com/tthost/tthost/sdk/sdktest"
)

// Host restarts that keep a running turn of the real Codex CLI: the
// worker is restarted in place or killed while the model's answer streams
// into a persistent `codex app-server` session; the next worker process
// reattaches to the codex plugin, adopts the turn, and the answer reaches
// the agent's events whole, once, from the same app-server process.

// The reattach turn's answer: reattachDeltas deltas "tick 1 ", "tick 2 ",
// ... reattachInterval apart (10 s), long enough for a restart to happen
// mid-answer. Its whole text is 1692 bytes, under the 2048 bytes past
// which an assistant_delta event keeps only the end of its text, so the
// deltas written to the events must add up to exactly the answer, however
// they are split around the restart.
const (
	reattachMarker   = "REATTACH_STREAM"
	reattachDeltas   = 200
	reattachInterval = 50 * time.Millisecond
)

func reattachScript(req codextest.Request) codextest.Reply {
	if strings.Contains(req.LastUserText(), reattachMarker) {
		return codextest.SlowReply(reattachDeltas, reattachInterval)
	}
	return codextest.DefaultScript(req)
}

// reattachCodexEnv is a real-Codex town whose workers' plugins survive
// them for window, with an agent whose first turn streams the long answer
// and a worker running it. It returns once the model is streaming the
// answer and its first delta is in the agent's events.
func reattachCodexEnv(t *testing.T, window time.Duration) (*realCodex, *town.Agent, *proc) {
	t.Helper()
	r := realCodexEnv(t, reattachScript, nil)
	r.cfg.TTHost.ReattachWindowSecs = int(window / time.Second)
	r.saveConfig()
	a := r.agent("streamer", "codex")
	r.send(a.ID, reattachMarker+" answer at length")
	p := r.agentLoop(a, 5)
	ctx, cancel := context.WithTimeout(r.ctx(), codexTimeout)
	defer cancel()
	if _, err := r.mock.WaitRequest(ctx, func(q codextest.Request) bool { return strings.Contains(q.LastUserText(), reattachMarker) }); err != nil {
		t.Fatalf("the turn never reached the model: %v\n%s", err, p.out.String())
	}
	r.waitEventType(a.ID, town.EventAgentAssistantDelta, codexTimeout)
	return r, a, p
}

// appServers are the live `codex app-server` processes of the test.
func (r *realCodex) appServers() []int {
	var out []int
	for _, p := range r.procs.Alive() {
		if strings.Contains(sdktest.Cmdline(p), "app-server") {
			out = append(out, p)
		}
	}
	return out
}

// deltaText is the text of the agent's assistant_delta events, in order,
// and how many of them were written before and after the event whose
// tthost kind is split.
func (r *realCodex) deltaText(agentID, split string) (text string, before, after int) {
	r.t.Helper()
	entries, err := r.store.ReadEvents(context.Background(), r.store.Keys().EventsAgent(agentID), "", 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var b strings.Builder
	seen := false
	for _, en := range entries {
		if en.Event == nil {
			continue
		}
		raw, ok := en.Event.Extra["tthost"].(json.RawMessage)
		if !ok {
			continue
		}
		var d struct {
			Kind string `json:"kind"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			r.t.Fatalf("event %s: tthost detail %s: %v", en.ID, raw, err)
		}
		switch {
		case d.Kind == split:
			seen = true
		case en.Event.Type == town.EventAgentAssistantDelta:
			b.WriteString(d.Text)
			if seen {
				after++
			} else {
				before++
			}
		}
	}
	return b.String(), before, after
}

// assertWholeAnswerOnce checks the end state of the adopted codex turn:
// the model was asked once, the turn completed once and nothing else, and
// the answer's deltas in the events add up to exactly the answer, with
// some written by each worker.
func (r *realCodex) assertWholeAnswerOnce(a *town.Agent) {
	r.t.Helper()
	if reqs := r.modelRequests(reattachMarker); len(reqs) != 1 {
		r.t.Errorf("%d model requests with the turn's message, want 1 (not delivered again)", len(reqs))
	}
	if n := r.countEvents(a.ID, "Round 1 completed"); n != 1 {
		r.t.Errorf("%d \"Round 1 completed\" events, want 1:\n%s", n, r.dumpEvents(a.ID))
	}
	dump := r.dumpEvents(a.ID)
	for _, bad := range []string{"interrupted", "re-queued", "delivering them again", "delivered again"} {
		if strings.Contains(dump, bad) {
			r.t.Errorf("the agent's events mention %q:\n%s", bad, dump)
		}
	}
	if got := r.getAgent(a.ID).RoundsCompleted; got != 1 {
		r.t.Errorf("rounds_completed %d, want 1", got)
	}
	if n := r.inFlightLen(a.ID); n != 0 {
		r.t.Errorf("%d message(s) still in flight", n)
	}
	if n := r.inboxLen(a.ID); n != 0 {
		r.t.Errorf("%d message(s) back in the inbox: delivered again", n)
	}
	var want strings.Builder
	for i := 1; i <= reattachDeltas; i++ {
		fmt.Fprintf(&want, "tick %d ", i)
	}
	got, before, after := r.deltaText(a.ID, "turn_adopted")
	if got != want.String() {
		r.t.Errorf("the assistant_delta events add up to %d bytes, want the %d-byte answer exactly:\n got %q\nwant %q", len(got), want.Len(), got, want.String())
	}
	r.t.Logf("the answer's %d bytes came in %d assistant_delta event(s) before the adoption and %d after", len(got), before, after)
	if before == 0 || after == 0 {
		r.t.Errorf("assistant_delta events: %d before the adoption, %d after; want some from each worker:\n%s", before, after, dump)
	}
}

func TestRealCodexTurnSurvivesARestartInPlace(t *testing.T) {
	r, a, p := reattachCodexEnv(t, 60*time.Second)
	servers := r.appServers()
	if len(servers) != 1 {
		t.Fatalf("codex app-server processes %v, want one", servers)
	}
	mark := p.out.Len()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !p.out.WaitAfter(mark, "adopted the turn the previous worker process left running", codexTimeout) {
		t.Fatalf("the restarted worker did not adopt the turn:\n%s", p.out.String())
	}
	r.waitRound(a.ID, 1, codexTimeout)
	if now := r.appServers(); len(now) != 1 || now[0] != servers[0] {
		t.Errorf("codex app-server processes %v after the restart, want the same %v", now, servers)
	}
	if err := r.store.RequestStop(r.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	r.assertWholeAnswerOnce(a)
	r.waitGone(servers, 10*time.Second, "the app-server after the worker stopped")
}

func TestRealCodexTurnSurvivesAKilledWorker(t *testing.T) {
	r, a, p := reattachCodexEnv(t, 60*time.Second)
	servers := r.appServers()
	plugins := r.pluginPids()
	if len(servers) != 1 || len(plugins) != 1 {
		t.Fatalf("codex app-server processes %v, plugins %v: want one of each", servers, plugins)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, codexTimeout)
	if now := r.appServers(); len(now) != 1 || now[0] != servers[0] {
		t.Fatalf("codex app-server processes %v after the worker's death, want %v still running", now, servers)
	}
	p2 := r.agentLoop(a, 5)
	if !p2.out.WaitAfter(0, "adopted the turn the previous worker process left running", codexTimeout) {
		t.Fatalf("the next worker did not adopt the turn:\n%s", p2.out.String())
	}
	r.waitRound(a.ID, 1, codexTimeout)
	if now := r.appServers(); len(now) != 1 || now[0] != servers[0] {
		t.Errorf("codex app-server processes %v after the adoption, want the same %v", now, servers)
	}
	if now := r.pluginPids(); len(now) != 1 || now[0] != plugins[0] {
		t.Errorf("plugin processes %v after the adoption, want the same %v", now, plugins)
	}
	if err := r.store.RequestStop(r.ctx(), a.ID); err != nil {
		t.Fatal(err)
	}
	if code := p2.wait(t, codexTimeout); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p2.out.String())
	}
	r.assertWholeAnswerOnce(a)
	if left := r.waitOnlyRedis(10 * time.Second); len(left) != 0 {
		t.Errorf("processes left after the worker stopped: %v", left)
	}
}
