package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestHandshakeStartsAThreadAndReportsItsID(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	_, rec, f := open(t, procs, openOpts{})
	ready := rec.WaitReady(t)
	if ready.RuntimeSessionID != "fake-thread-1" || ready.Resumed || ready.ContextLostReason != "" {
		t.Fatalf("SessionReady = %+v, want fake-thread-1, not resumed", ready)
	}
	rec.WaitKind(t, sdk.EventAwaitingInput, "")
	if ks := sdktest.Kinds(rec.Events()); !slices.Equal(ks, []sdk.EventKind{sdk.EventSessionReady, sdk.EventAwaitingInput}) {
		t.Fatalf("events = %v, want session_ready, awaiting_input", ks)
	}

	msgs := f.messages(t)
	var methods []string
	for _, m := range msgs {
		methods = append(methods, m.Method)
	}
	if !slices.Equal(methods, []string{"initialize", "initialized", "thread/start"}) {
		t.Fatalf("the fake got %v, want initialize, initialized, thread/start", methods)
	}
	init := f.params(t, "initialize")[0]
	want := map[string]any{
		"clientInfo": map[string]any{"name": "tthost", "title": "tthost", "version": buildinfo.Version},
		"capabilities": map[string]any{
			"experimentalApi":           false,
			"optOutNotificationMethods": []any{"account/rateLimits/updated", "remoteControl/status/changed"},
		},
	}
	if !reflect.DeepEqual(init, want) {
		t.Errorf("initialize params = %v\nwant %v", init, want)
	}
	start := f.params(t, "thread/start")[0]
	if start["approvalPolicy"] != "never" || start["sandbox"] != "danger-full-access" || start["cwd"] == "" {
		t.Errorf("thread/start params = %v, want never, danger-full-access and a cwd", start)
	}
	if _, ok := start["model"]; ok {
		t.Errorf("thread/start for codex sent a model: %v", start)
	}
}

func TestResumeOfAKnownThreadContinuesIt(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, f := open(t, procs, openOpts{resumeID: "fake-thread-41"})
	ready := rec.WaitReady(t)
	if ready.RuntimeSessionID != "fake-thread-41" || !ready.Resumed || ready.ContextLostReason != "" {
		t.Fatalf("SessionReady = %+v, want fake-thread-41 resumed", ready)
	}
	resume := f.params(t, "thread/resume")
	if len(resume) != 1 || resume[0]["threadId"] != "fake-thread-41" || resume[0]["excludeTurns"] != true {
		t.Fatalf("thread/resume params = %v, want threadId fake-thread-41 with excludeTurns", resume)
	}
	if got := f.params(t, "thread/start"); len(got) != 0 {
		t.Errorf("a resumed session also started a thread: %v", got)
	}
	runTurn(t, s, rec, "hello")
	if got := f.params(t, "turn/start")[0]["threadId"]; got != "fake-thread-41" {
		t.Errorf("turn/start threadId = %v, want the resumed thread", got)
	}
}

func TestResumeOfAnUnknownThreadStartsANewOne(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{resumeID: "0199a-gone"})
	ready := rec.WaitReady(t)
	if ready.RuntimeSessionID != "fake-thread-1" || ready.Resumed ||
		!strings.Contains(ready.ContextLostReason, "no rollout found for thread id 0199a-gone") {
		t.Fatalf("SessionReady = %+v, want a new thread and the reason the old one was lost", ready)
	}
	if _, c, _ := runTurn(t, s, rec, "hello"); c.Status != sdk.StatusCompleted {
		t.Fatalf("turn after a lost resume = %+v", c)
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command string
		options map[string]string
		env     map[string]string
		msg     []string // what the fatal error says
		code    *int
	}{
		{
			name:    "a codex that is not installed says how to install it",
			command: "/nonexistent/bin/codex exec",
			msg:     []string{"/nonexistent/bin/codex", "npm install -g @openai/codex"},
		},
		{
			name:    "an app-server that dies at once is quoted from its stderr",
			command: `echo "cannot load config.toml" >&2; exit 7`,
			msg:     []string{"initialize", "cannot load config.toml", "exit status 7"},
			code:    sdk.IntPtr(7),
		},
		{
			name:    "an initialize that is never answered fails within request_timeout_ms",
			options: map[string]string{optRequestTimeout: "300"},
			env:     map[string]string{"FAKE_CODEX_IGNORE": "initialize"},
			msg:     []string{"initialize", "did not answer", "fake-codex app-server started"},
		},
		{
			name:    "a thread/start that is never answered fails within request_timeout_ms",
			options: map[string]string{optRequestTimeout: "300"},
			env:     map[string]string{"FAKE_CODEX_IGNORE": "thread/start"},
			msg:     []string{"thread/start", "did not answer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec, _ := open(t, procs, openOpts{command: tt.command, options: tt.options, env: tt.env, starting: true})
			evs := rec.WaitExited(t)
			if len(evs) != 2 || evs[0].Kind != sdk.EventError || !evs[0].Error.Fatal || evs[0].Error.Code != "start_failed" {
				t.Fatalf("want a fatal start_failed error and exited:\n%s", sdktest.Dump(evs))
			}
			for _, m := range tt.msg {
				if !strings.Contains(evs[0].Error.Message, m) {
					t.Errorf("error %q does not mention %q", evs[0].Error.Message, m)
				}
			}
			ex := evs[1].Exited
			if ex.Reason != sdk.ExitCLIExited || (tt.code != nil && (ex.ExitCode == nil || *ex.ExitCode != *tt.code)) {
				t.Errorf("Exited = %+v, want reason cli_exited (exit code %v)", *ex, tt.code)
			}
			if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); err == nil {
				t.Error("Send on a session whose codex never started succeeded")
			}
			assertGone(t, procs)
		})
	}
}

func TestAppServerStderrGoesToTheSessionLog(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	logDir := filepath.Join(t.TempDir(), "logs")
	s, rec, _ := open(t, procs, openOpts{logDir: logDir})
	rec.WaitReady(t)
	if err := s.Close(context.Background(), sdk.CloseGraceful); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(logDir, "worker-1.codex.log"))
	if err != nil || !strings.Contains(string(b), "fake-codex app-server started") {
		t.Fatalf("session log = %q, %v; want the app-server's stderr", b, err)
	}
}

func TestCodexMiniSendsItsModelAndEffort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cli           string
		options       map[string]string
		model, effort string // "" = not sent
	}{
		{"codex-mini defaults to gpt-5.4-mini at medium effort", cliCodexMini, nil, miniModel, miniEffort},
		{"options override codex-mini's defaults", cliCodexMini, map[string]string{optModel: "gpt-5.5", optEffort: "high"}, "gpt-5.5", "high"},
		{"codex leaves model and effort to codex's config", cliCodex, nil, "", ""},
		{"options set them for codex", cliCodex, map[string]string{optModel: "o3", optEffort: "low"}, "o3", "low"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec, f := open(t, procs, openOpts{cli: tt.cli, options: tt.options})
			runTurn(t, s, rec, "hello")
			start, turn := f.params(t, "thread/start")[0], f.params(t, "turn/start")[0]
			var effort any
			if cfg, ok := start["config"].(map[string]any); ok {
				effort = cfg["model_reasoning_effort"]
			}
			if !sentAs(start["model"], tt.model) || !sentAs(effort, tt.effort) {
				t.Errorf("thread/start model %v, config effort %v; want %q, %q", start["model"], effort, tt.model, tt.effort)
			}
			if !sentAs(turn["model"], tt.model) || !sentAs(turn["effort"], tt.effort) {
				t.Errorf("turn/start model %v, effort %v; want %q, %q", turn["model"], turn["effort"], tt.model, tt.effort)
			}
		})
	}
}

// sentAs reports whether a JSON value is the string want ("": absent).
func sentAs(v any, want string) bool {
	if want == "" {
		return v == nil
	}
	return v == want
}

func TestSandboxAndApprovalPolicyReachCodexInTheirTwoShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sandbox, approval string
		policy            map[string]any
	}{
		{"danger-full-access", "never", map[string]any{"type": "dangerFullAccess"}},
		{"read-only", "untrusted", map[string]any{"type": "readOnly", "networkAccess": false}},
		{"workspace-write", "on-request", map[string]any{"type": "workspaceWrite", "writableRoots": []any{}, "networkAccess": false}},
	}
	for _, tt := range tests {
		t.Run(tt.sandbox, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			s, rec, f := open(t, procs, openOpts{options: map[string]string{optSandbox: tt.sandbox, optApprovalPolicy: tt.approval}})
			runTurn(t, s, rec, "hello")
			start, turn := f.params(t, "thread/start")[0], f.params(t, "turn/start")[0]
			if start["sandbox"] != tt.sandbox || start["approvalPolicy"] != tt.approval {
				t.Errorf("thread/start sandbox %v approvalPolicy %v, want %s %s", start["sandbox"], start["approvalPolicy"], tt.sandbox, tt.approval)
			}
			if !reflect.DeepEqual(turn["sandboxPolicy"], tt.policy) || turn["approvalPolicy"] != tt.approval {
				t.Errorf("turn/start sandboxPolicy %v approvalPolicy %v, want %v %s", turn["sandboxPolicy"], turn["approvalPolicy"], tt.policy, tt.approval)
			}
			input := turn["input"].([]any)[0]
			if !reflect.DeepEqual(input, map[string]any{"type": "text", "text": "hello", "text_elements": []any{}}) {
				t.Errorf("turn/start input = %v", input)
			}
		})
	}
}

func TestSendWaitsForAStartingSession(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	// The first Send races the handshake: it is held until codex is
	// ready, not failed.
	s, rec, _ := open(t, procs, openOpts{starting: true})
	id := send(t, s, sdk.Input{Text: "hello"}, sdk.DeliveryStarted)
	if c, _ := rec.WaitCompleted(t, id); c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %+v", c)
	}
	evs := rec.Events()
	if evs[0].Kind != sdk.EventSessionReady {
		t.Fatalf("session_ready is not the first event:\n%s", sdktest.Dump(evs))
	}
}

func TestSendOnAClosedSessionIsRefused(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	s, rec, _ := open(t, procs, openOpts{})
	rec.WaitReady(t)
	if err := s.Close(context.Background(), sdk.CloseImmediate); err != nil {
		t.Fatal(err)
	}
	for _, k := range []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent, sdk.InputCancel} {
		if _, err := s.Send(context.Background(), sdk.Input{Kind: k, Text: "x"}); !errors.Is(err, sdk.ErrSessionNotFound) {
			t.Errorf("Send(%v) after Close = %v, want ErrSessionNotFound", k, err)
		}
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputKind(99)}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("Send(unknown kind) = %v, want ErrUnsupported", err)
	}
}

func TestAProfileFlagIsReportedNotPassed(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	// A wrapper named codex: the flags are derived as for the real codex.
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "codex")
	script := "#!/bin/sh\necho \"$@\" > " + filepath.Join(dir, "args") + "\nexec " + fakeBinary(t) + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, rec, _ := open(t, procs, openOpts{command: wrapper + " exec -p work -m gpt-5.5 --enable foo 'do it'"})
	e := rec.WaitKind(t, sdk.EventError, "")
	if e.Error.Code != "ignored_flag" || e.Error.Fatal || !strings.Contains(e.Error.Message, "-p work") {
		t.Fatalf("error = %+v, want a non-fatal ignored_flag about -p work", *e.Error)
	}
	b, err := os.ReadFile(filepath.Join(dir, "args"))
	if got, want := strings.TrimSpace(string(b)), `app-server --listen stdio:// -c model="gpt-5.5" --enable foo`; err != nil || got != want {
		t.Fatalf("the wrapper got %q (%v), want %q", got, err, want)
	}
}
