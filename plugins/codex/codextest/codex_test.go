package codextest_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/plugins/codex/codextest"
	"github.com/tthost/tthost/sdk/sdktest"
)

// waitLong bounds every wait on codex; it is only reached when something
// is broken (a text turn takes about 0.1 s).
const waitLong = 60 * time.Second

// rig is one test's offline codex setup: a process tracker, a mock model
// and a CODEX_HOME pointing at it.
type rig struct {
	procs *sdktest.Processes
	mock  *codextest.MockModel
	home  string
	cwd   string
}

func newRig(t *testing.T, script codextest.Script) *rig {
	t.Helper()
	// Registered first, so its check runs after every other cleanup has
	// stopped codex.
	procs := sdktest.TrackProcesses(t)
	mock := codextest.NewMockModel(t, script)
	t.Cleanup(func() {
		// Nothing but the mock's own API was asked for; the proxy guard
		// fails the test on its own if codex tried to leave 127.0.0.1.
		if other := mock.Other(); len(other) > 0 {
			t.Errorf("codex sent requests the mock does not serve: %v", other)
		}
	})
	return &rig{procs: procs, mock: mock, home: codextest.NewCodexHome(t, mock), cwd: t.TempDir()}
}

// start starts an app-server on the rig's CODEX_HOME and initializes it.
func (r *rig) start(ctx context.Context, t *testing.T) *codextest.AppServer {
	t.Helper()
	srv := codextest.StartAppServer(t, codextest.AppServerConfig{Home: r.home, Env: []string{r.procs.Env()}, Dir: r.cwd})
	if _, err := srv.Initialize(ctx); err != nil {
		t.Fatalf("initialize: %v\nstderr:\n%s", err, srv.Stderr())
	}
	t.Logf("app-server pid %d: start → initialize response in %v", srv.PID(), time.Since(srv.Started).Round(time.Millisecond))
	return srv
}

// call makes a request and decodes its result into out (nil: ignore it).
func call(ctx context.Context, t *testing.T, srv *codextest.AppServer, method string, params, out any) {
	t.Helper()
	res, err := srv.Call(ctx, method, params)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, srv.Stderr())
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			t.Fatalf("%s result %s: %v", method, res, err)
		}
	}
}

func (r *rig) startThread(ctx context.Context, t *testing.T, srv *codextest.AppServer) string {
	t.Helper()
	var res struct {
		Thread struct {
			ID string `json:"id"`
		} `json:"thread"`
		Model string `json:"model"`
	}
	call(ctx, t, srv, "thread/start", map[string]any{
		"cwd": r.cwd, "approvalPolicy": "never", "sandbox": "danger-full-access",
	}, &res)
	if res.Thread.ID == "" || res.Model != codextest.MockModelName {
		t.Fatalf("thread/start: thread id %q, model %q; want an id and %q", res.Thread.ID, res.Model, codextest.MockModelName)
	}
	return res.Thread.ID
}

func startTurn(ctx context.Context, t *testing.T, srv *codextest.AppServer, threadID, text string) string {
	t.Helper()
	var res struct {
		Turn struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"turn"`
	}
	call(ctx, t, srv, "turn/start", map[string]any{"threadId": threadID, "input": codextest.TextInput(text)}, &res)
	if res.Turn.ID == "" || res.Turn.Status != "inProgress" {
		t.Fatalf("turn/start: turn %+v, want an id and inProgress", res.Turn)
	}
	return res.Turn.ID
}

// turnEvent is the params of a turn-scoped notification.
type turnEvent struct {
	ThreadID string `json:"threadId"`
	TurnID   string `json:"turnId"`
	Delta    string `json:"delta"`
	Turn     struct {
		ID     string          `json:"id"`
		Status string          `json:"status"`
		Error  json.RawMessage `json:"error"`
	} `json:"turn"`
	Item struct {
		Type             string `json:"type"`
		ID               string `json:"id"`
		Text             string `json:"text"`
		Status           string `json:"status"`
		Command          string `json:"command"`
		ExitCode         *int   `json:"exitCode"`
		AggregatedOutput string `json:"aggregatedOutput"`
	} `json:"item"`
}

func decode(t *testing.T, m codextest.Message) turnEvent {
	t.Helper()
	var e turnEvent
	if err := json.Unmarshal(m.Params, &e); err != nil {
		t.Fatalf("%s params %s: %v", m.Method, m.Params, err)
	}
	return e
}

// inTurn matches a notification of turn id (turn/completed names it as
// turn.id, the others as turnId).
func inTurn(t *testing.T, id string) func(codextest.Message) bool {
	return func(m codextest.Message) bool {
		e := decode(t, m)
		return e.TurnID == id || e.Turn.ID == id
	}
}

// events returns the turn's notifications with the given method.
func events(t *testing.T, srv *codextest.AppServer, turnID, method string) []turnEvent {
	var out []turnEvent
	for _, m := range srv.Messages() {
		if m.Method == method && inTurn(t, turnID)(m) {
			out = append(out, decode(t, m))
		}
	}
	return out
}

func waitTurn(ctx context.Context, t *testing.T, srv *codextest.AppServer, turnID string) turnEvent {
	t.Helper()
	m, err := srv.Wait(ctx, "turn/completed", inTurn(t, turnID))
	if err != nil {
		t.Fatalf("turn %s: %v\nstderr:\n%s", turnID, err, srv.Stderr())
	}
	return decode(t, m)
}

// completedItems returns the items of the turn that got item/completed, by type.
func completedItems(t *testing.T, srv *codextest.AppServer, turnID, typ string) []turnEvent {
	var out []turnEvent
	for _, e := range events(t, srv, turnID, "item/completed") {
		if e.Item.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func TestTextTurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	r := newRig(t, nil)
	srv := r.start(ctx, t)
	if !slices.Contains(r.procs.Alive(), srv.PID()) {
		t.Fatalf("the process tracker does not see codex (pid %d): its marker did not reach the environment", srv.PID())
	}
	thread := r.startThread(ctx, t, srv)

	began := time.Now()
	turn := startTurn(ctx, t, srv, thread, "hello there\nsecond line")
	done := waitTurn(ctx, t, srv, turn)
	took := time.Since(began)
	if done.Turn.Status != "completed" {
		t.Fatalf("turn status %q (error %s), want completed", done.Turn.Status, done.Turn.Error)
	}
	if reqs := r.mock.Requests(); len(reqs) > 0 {
		t.Logf("text turn: turn/start → turn/completed in %v (→ model request %v)",
			took.Round(time.Millisecond), reqs[0].At.Sub(began).Round(time.Millisecond))
	}
	var streamed strings.Builder
	for _, e := range events(t, srv, turn, "item/agentMessage/delta") {
		streamed.WriteString(e.Delta)
	}
	msgs := completedItems(t, srv, turn, "agentMessage")
	if len(msgs) != 1 || msgs[0].Item.Text != "echo: hello there" || streamed.String() != msgs[0].Item.Text {
		t.Fatalf("agent messages %+v, deltas %q; want one \"echo: hello there\" streamed as deltas", msgs, streamed.String())
	}

	reqs := r.mock.Requests()
	if len(reqs) != 1 {
		t.Fatalf("mock saw %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if req.Model != codextest.MockModelName || req.Outcome != codextest.OutcomeCompleted {
		t.Errorf("request model %q outcome %q, want %q completed", req.Model, req.Outcome, codextest.MockModelName)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer dummy-key" {
		t.Errorf("authorization %q, want the dummy key from MOCK_API_KEY", got)
	}
	if got := req.UserTexts(); !slices.Equal(got, []string{"hello there\nsecond line"}) {
		t.Errorf("user texts %q, want just the prompt", got)
	}
	if !slices.Contains(req.Tools, "exec_command") {
		t.Errorf("tools %v, want exec_command among them", req.Tools)
	}
}

func TestToolCallTurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	r := newRig(t, nil)
	srv := r.start(ctx, t)
	thread := r.startThread(ctx, t, srv)

	began := time.Now()
	turn := startTurn(ctx, t, srv, thread, "run something: "+codextest.MarkToolCall)
	done := waitTurn(ctx, t, srv, turn)
	t.Logf("tool turn: turn/start → turn/completed in %v", time.Since(began).Round(time.Millisecond))
	if done.Turn.Status != "completed" {
		t.Fatalf("turn status %q (error %s), want completed", done.Turn.Status, done.Turn.Error)
	}

	cmds := completedItems(t, srv, turn, "commandExecution")
	if len(cmds) != 1 {
		t.Fatalf("%d commandExecution items completed, want 1", len(cmds))
	}
	c := cmds[0].Item
	if c.Status != "completed" || c.ExitCode == nil || *c.ExitCode != 0 || !strings.Contains(c.Command, "echo hi") || c.AggregatedOutput != "hi\n" {
		t.Errorf("command item %+v, want echo hi completed with exit code 0 and output \"hi\\n\"", c)
	}
	msgs := completedItems(t, srv, turn, "agentMessage")
	if len(msgs) != 1 || msgs[0].Item.Text != "tool output: hi" {
		t.Errorf("agent messages %+v, want one \"tool output: hi\"", msgs)
	}

	reqs := r.mock.Requests()
	if len(reqs) != 2 {
		t.Fatalf("mock saw %d requests, want 2 (the call, then its output)", len(reqs))
	}
	if reqs[0].HasFunctionOutput() {
		t.Errorf("first request already has a function_call_output")
	}
	outs := reqs[1].FunctionOutputs()
	if len(outs) != 1 || outs[0].CallID != "call_1" || !strings.Contains(outs[0].Output, "hi") {
		t.Errorf("second request's function outputs %+v, want call_1's output with \"hi\"", outs)
	}
}

func TestInterruptSlowStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	r := newRig(t, nil)
	srv := r.start(ctx, t)
	thread := r.startThread(ctx, t, srv)

	turn := startTurn(ctx, t, srv, thread, codextest.MarkSlowStream)
	// The answer is streaming once the first delta reached the client.
	if _, err := srv.Wait(ctx, "item/agentMessage/delta", inTurn(t, turn)); err != nil {
		t.Fatalf("first delta: %v", err)
	}
	began := time.Now()
	call(ctx, t, srv, "turn/interrupt", map[string]any{"threadId": thread, "turnId": turn}, nil)
	done := waitTurn(ctx, t, srv, turn)
	t.Logf("interrupt: turn/interrupt → turn/completed in %v", time.Since(began).Round(time.Millisecond))
	if done.Turn.Status != "interrupted" {
		t.Fatalf("turn status %q, want interrupted", done.Turn.Status)
	}

	// codex drops the model stream: the mock's handler sees its request
	// context cancelled long before the slow answer could end.
	req, err := r.mock.WaitRequest(ctx, func(q codextest.Request) bool { return q.Outcome != codextest.OutcomeStreaming })
	if err != nil {
		t.Fatal(err)
	}
	if req.Outcome != codextest.OutcomeDisconnected || req.LastUserText() != codextest.MarkSlowStream {
		t.Errorf("request %d outcome %q for %q, want disconnected for the SLOW_STREAM prompt", req.Seq, req.Outcome, req.LastUserText())
	}
	if got := completedItems(t, srv, turn, "agentMessage"); len(got) != 0 {
		t.Errorf("the interrupted answer completed as %+v, want no completed agentMessage", got)
	}

	// The thread is still usable.
	next := startTurn(ctx, t, srv, thread, "still there?")
	if done := waitTurn(ctx, t, srv, next); done.Turn.Status != "completed" {
		t.Errorf("turn after the interrupt: %q, want completed", done.Turn.Status)
	}
}

func TestResumeInNewProcessSendsHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	r := newRig(t, nil)

	first := r.start(ctx, t)
	thread := r.startThread(ctx, t, first)
	const earlier = "my favourite colour is teal"
	if done := waitTurn(ctx, t, first, startTurn(ctx, t, first, thread, earlier)); done.Turn.Status != "completed" {
		t.Fatalf("first turn: %q, want completed", done.Turn.Status)
	}
	first.CloseStdin()
	select {
	case <-first.Exited():
	case <-ctx.Done():
		t.Fatalf("first app-server did not exit after stdin closed")
	}

	second := r.start(ctx, t)
	var resumed struct {
		Thread struct {
			ID    string            `json:"id"`
			Turns []json.RawMessage `json:"turns"`
		} `json:"thread"`
	}
	call(ctx, t, second, "thread/resume", map[string]any{"threadId": thread, "excludeTurns": true}, &resumed)
	if resumed.Thread.ID != thread || len(resumed.Thread.Turns) != 0 {
		t.Fatalf("thread/resume: id %q with %d turns, want %q without turns", resumed.Thread.ID, len(resumed.Thread.Turns), thread)
	}
	turn := startTurn(ctx, t, second, thread, codextest.MarkRemember)
	if done := waitTurn(ctx, t, second, turn); done.Turn.Status != "completed" {
		t.Fatalf("REMEMBER turn: %q, want completed", done.Turn.Status)
	}

	reqs := r.mock.Requests()
	last := reqs[len(reqs)-1]
	if got := last.UserTexts(); !slices.Equal(got, []string{earlier, codextest.MarkRemember}) {
		t.Errorf("resumed turn's user messages %q, want the earlier one then REMEMBER", got)
	}
	msgs := completedItems(t, second, turn, "agentMessage")
	if want := "I remember: " + earlier; len(msgs) != 1 || msgs[0].Item.Text != want {
		t.Errorf("agent messages %+v, want one %q", msgs, want)
	}
	for _, m := range second.Messages() {
		if m.Method == "deprecationNotice" {
			t.Errorf("resume with excludeTurns got a deprecation notice: %s", m.Params)
		}
	}
}

// TestStopLeavesNoProcess stops codex in the middle of a long command: the
// command, and whatever codex started in sessions of its own, must be gone
// the moment the test's cleanup is over.
func TestStopLeavesNoProcess(t *testing.T) {
	var procs *sdktest.Processes
	t.Run("codex running a long command", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), waitLong)
		defer cancel()
		r := newRig(t, func(q codextest.Request) codextest.Reply {
			if q.HasFunctionOutput() {
				return codextest.Reply{Text: "done"}
			}
			return codextest.Reply{Call: &codextest.FunctionCall{Name: "exec_command", Arguments: `{"cmd":"sleep 300"}`}}
		})
		procs = r.procs
		srv := r.start(ctx, t)
		startTurn(ctx, t, srv, r.startThread(ctx, t, srv), "sleep")
		if _, err := srv.Wait(ctx, "item/started", func(m codextest.Message) bool { return decode(t, m).Item.Type == "commandExecution" }); err != nil {
			t.Fatal(err)
		}
		// Polling /proc: there is no event for "a grandchild started".
		for !slices.ContainsFunc(procs.Alive(), func(pid int) bool { return strings.Contains(sdktest.Cmdline(pid), "sleep 300") }) {
			select {
			case <-ctx.Done():
				t.Fatalf("sleep 300 never ran; processes: %v", procs.Alive())
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	if left := procs.Alive(); len(left) > 0 {
		for _, pid := range left {
			t.Errorf("left running: pid %d %s", pid, sdktest.Cmdline(pid))
		}
	}
}

func TestCodexVersion(t *testing.T) {
	got := codextest.CodexVersion(t)
	if got == codextest.Version {
		return
	}
	if os.Getenv(codextest.BinEnv) != "" {
		t.Logf("$%s is codex %s, not the pinned %s", codextest.BinEnv, got, codextest.Version)
		return
	}
	t.Errorf("installed codex is %s, want the pinned %s: reinstall with `rm -rf .tools/codex && make ensure-codex`", got, codextest.Version)
}

// TestConfigIsStrictlyValid has codex itself check the config.toml that
// NewCodexHome writes, rejecting any key it does not know.
func TestConfigIsStrictlyValid(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	r := newRig(t, nil)
	cmd := exec.CommandContext(ctx, codextest.CodexBinary(t), "app-server", "--strict-config", "--print-startup-config")
	cmd.Dir = r.cwd
	cmd.Env = append(append(os.Environ(), codextest.Env(r.home)...), r.procs.Env())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("codex --strict-config rejects the config: %v\n%s", err, out)
	}
	var got struct {
		AppServerVersion string `json:"appServerVersion"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.AppServerVersion == "" {
		t.Fatalf("startup config %s: %v", out, err)
	}
	if len(r.mock.Requests()) != 0 {
		t.Errorf("checking the config asked the model")
	}
}
