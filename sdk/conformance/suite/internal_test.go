package suite

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/procscan"
	"github.com/tthost/tthost/sdk/sdktest"
)

// feed runs events through a stream's rules and returns the violations.
func feed(t *testing.T, evs ...sdk.Event) []string {
	t.Helper()
	ch := make(chan sdk.Event, len(evs))
	for i, e := range evs {
		if e.Seq == 0 {
			e.Seq = uint64(i + 1)
		}
		if e.SessionID == "" {
			e.SessionID = "s1"
		}
		ch <- e
	}
	close(ch)
	s := newStream("session 1", "s1", ch)
	<-s.done
	return s.violations()
}

func ready() sdk.Event { return sdk.SessionReadyEvent(sdk.SessionReady{}) }
func started(id string) sdk.Event {
	return sdk.TurnStartedEvent(id)
}
func completed(id string) sdk.Event {
	return sdk.TurnCompletedEvent(id, sdk.TurnCompleted{Status: sdk.StatusCompleted})
}
func exited() sdk.Event { return sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}) }

func TestStreamRules(t *testing.T) {
	cases := []struct {
		name string
		evs  []sdk.Event
		want string // a violation containing this; "" for none
	}{
		{"a well-formed session", []sdk.Event{ready(), sdk.AwaitingInputEvent(), started("t1"), sdk.DeltaEvent("t1", "hi"),
			completed("t1"), sdk.AwaitingInputEvent(), exited()}, ""},
		{"a gap in seq", []sdk.Event{ready(), {Kind: sdk.EventAwaitingInput, Seq: 3}, exited()}, "has seq 3, want 2"},
		{"another session's event", []sdk.Event{ready(), {Kind: sdk.EventAwaitingInput, SessionID: "s2"}, exited()}, `belongs to session "s2"`},
		{"two SessionReady", []sdk.Event{ready(), ready(), exited()}, "a second SessionReady"},
		{"a turn before SessionReady", []sdk.Event{started("t1"), completed("t1"), ready(), exited()}, "before SessionReady"},
		{"two TurnCompleted", []sdk.Event{ready(), started("t1"), completed("t1"), completed("t1"), exited()}, "a second TurnCompleted"},
		{"TurnCompleted without TurnStarted", []sdk.Event{ready(), completed("t9"), exited()}, "never started"},
		{"a turn while one runs", []sdk.Event{ready(), started("t1"), started("t2"), completed("t1"), completed("t2"), exited()}, `while turn "t1" is still running`},
		{"a reused turn id", []sdk.Event{ready(), started("t1"), completed("t1"), started("t1"), completed("t1"), exited()}, "reuses the id"},
		{"a delta after its TurnCompleted", []sdk.Event{ready(), started("t1"), completed("t1"), sdk.DeltaEvent("t1", "late"), exited()}, "after its turn's TurnCompleted"},
		{"a delta without turn id during a turn", []sdk.Event{ready(), started("t1"), sdk.DeltaEvent("", "x"), completed("t1"), exited()}, "without a turn id"},
		{"AwaitingInput during a turn", []sdk.Event{ready(), started("t1"), sdk.AwaitingInputEvent(), completed("t1"), exited()}, "AwaitingInput"},
		{"a turn after a fatal error", []sdk.Event{ready(), sdk.ErrorEvent("", "x", "dead", true), started("t1"), completed("t1"), exited()}, "after a fatal Error"},
		{"exited during a turn", []sdk.Event{ready(), started("t1"), exited()}, `while turn "t1" had no TurnCompleted`},
		{"an Exited the host made up", []sdk.Event{ready(), sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitPluginExited})}, "synthesise Exited"},
		{"no Exited", []sdk.Event{ready()}, "without an Exited event"},
		{"an invalid status", []sdk.Event{ready(), started("t1"), sdk.TurnCompletedEvent("t1", sdk.TurnCompleted{Status: "done"}), exited()}, "no valid status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := feed(t, c.evs...)
			if c.want == "" {
				if len(got) > 0 {
					t.Fatalf("violations on a good stream: %q", got)
				}
				return
			}
			if !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, c.want) && strings.Contains(v, "(rule: ") }) {
				t.Fatalf("violations %q; want one containing %q with its rule", got, c.want)
			}
		})
	}
}

func TestStreamWaitEndsWithTheStream(t *testing.T) {
	ch := make(chan sdk.Event, 1)
	s := newStream("session 1", "s1", ch)
	ch <- sdk.Event{Kind: sdk.EventSessionReady, Seq: 1, SessionID: "s1", Ready: &sdk.SessionReady{}}
	if _, err := s.wait(context.Background(), "SessionReady", hasKind(sdk.EventSessionReady, "")); err != nil {
		t.Fatal(err)
	}
	close(ch)
	_, err := s.wait(context.Background(), "TurnStarted", hasKind(sdk.EventTurnStarted, ""))
	var we *waitError
	if !errors.As(err, &we) || !we.ended || !strings.Contains(err.Error(), "seq 1 session_ready") {
		t.Fatalf("wait after the end = %v; want an ended waitError listing the events", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s2 := newStream("session 2", "s2", make(chan sdk.Event))
	if _, err := s2.wait(ctx, "anything", hasKind(sdk.EventExited, "")); !errors.As(err, &we) || we.ended {
		t.Fatalf("wait with a cancelled context = %v", err)
	}
}

func TestLargePromptIsOneMiBOfUTF8(t *testing.T) {
	p := largePrompt("first " + unicodeText)
	if len(p) != 1<<20 || !utf8.ValidString(p) || !strings.HasPrefix(p, "first "+unicodeText+"\n") {
		t.Fatalf("len %d, valid %v, starts %q", len(p), utf8.ValidString(p), clip(p, 40))
	}
	for _, m := range []string{MarkSleep, MarkFail} {
		if strings.Contains(p, m) {
			t.Fatalf("the large prompt holds the marker %s", m)
		}
	}
}

func TestMismatchSaysWhereTheTextBroke(t *testing.T) {
	want := "conformance héllo ✓ 日本 and a long tail of words"
	cases := []struct{ out, says string }{
		{"", "no output"},
		{"something else entirely", "starting \"something else"},
		{"prefix " + want[:30] + "XYZ", "follows the prompt for 30 bytes"},
	}
	for _, c := range cases {
		if got := mismatch(c.out, want); !strings.Contains(got, c.says) {
			t.Errorf("mismatch(%q) = %q; want it to say %q", c.out, got, c.says)
		}
	}
}

func TestTargetDefaults(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plugin")
	sdktest.CopyFile(t, "/bin/sh", bin, 0o755)
	got, err := Target{Path: bin}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Command != StandInCommand || got.Prompts != (Prompts{Long: MarkSleep, Fail: MarkFail, Echo: EchoFull,
		Steer: MarkSleep, SteerEcho: EchoFull, Recall: MarkRecall}) ||
		!slices.Equal(got.Checksum, sdktest.SHA256File(t, bin)) {
		t.Fatalf("defaults %+v", got)
	}
	got, err = Target{Path: bin, Command: "mycli"}.withDefaults()
	if err != nil || got.Prompts != (Prompts{Long: MarkSleep, Fail: MarkFail, Echo: EchoNone, Steer: MarkSleep, SteerEcho: EchoNone}) {
		t.Fatalf("a custom command: prompts %+v, err %v; want echo none, steer echo none, no recall", got.Prompts, err)
	}
	got, err = Target{Path: bin, Command: "mycli", Prompts: Prompts{Long: "L", Echo: EchoFirstLine, Steer: "S"}}.withDefaults()
	if err != nil || got.Prompts.SteerEcho != EchoFull || got.Prompts.Steer != "S" {
		t.Fatalf("a custom command that echoes: prompts %+v, err %v; want steer echo full", got.Prompts, err)
	}
	if got, err := (Target{Backend: stubBackend{}}).withDefaults(); err != nil || !got.inProcess() || got.Path != "" {
		t.Fatalf("an in-process target: %+v, %v", got, err)
	}
	for _, bad := range []Target{
		{},
		{Path: filepath.Join(t.TempDir(), "missing")},
		{Path: bin, Prompts: Prompts{Echo: "loud"}},
		{Path: bin, Prompts: Prompts{SteerEcho: "loud"}},
		{Path: bin, Prompts: Prompts{Long: "X", Fail: "X"}},
		{Path: bin, Prompts: Prompts{Steer: "X", Fail: "X"}},
		{Path: bin, Prompts: Prompts{Recall: MarkSleep}},
		{Path: bin, Backend: stubBackend{}},
		{Backend: stubBackend{}, PluginEnv: []string{"A=1"}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestStandInCommand runs the stand-in the way the one-shot backend does.
func TestStandInCommand(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	run := func(prompt string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", StandInCommand)
		cmd.Env = procs.Environ()
		cmd.Stdin = strings.NewReader(prompt)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	big := largePrompt("big " + unicodeText)
	if out, err := run(big); err != nil || out != big+"\n" {
		t.Fatalf("echo of 1 MiB: %d bytes, err %v", len(out), err)
	}
	out, err := run("please " + MarkFail)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "failing as asked") {
		t.Fatalf("fail marker: %q, %v", out, err)
	}

	cmd := exec.Command("sh", "-c", StandInCommand)
	cmd.Env = procs.Environ()
	cmd.Stdin = strings.NewReader(MarkSleep)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("conformance stand-in: sleeping"))
	if _, err := stdout.Read(line); err != nil || string(line) != "conformance stand-in: sleeping" {
		t.Fatalf("sleep marker printed %q, %v", line, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func TestReportJSON(t *testing.T) {
	var r Report
	r.add(Result{Name: "a", Status: StatusPass, Duration: 1500 * time.Microsecond})
	r.add(Result{Name: "b", Status: StatusFail, Message: "broke"})
	r.add(Result{Name: "c", Status: StatusNotDeclared})
	r.add(Result{Name: "d", Status: StatusUnproven, Message: "no process"})
	if r.OK() || !slices.Equal(r.Failed(), []string{"b"}) || r.Summary != (Summary{Passed: 1, Failed: 1, NotDeclared: 1, Unproven: 1}) {
		t.Fatalf("report %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"checks":[{"name":"a","status":"pass","duration_ms":1.5}`, `"status":"fail","message":"broke"`,
		`"status":"unproven","message":"no process"`,
		`"summary":{"passed":1,"failed":1,"not_declared":1,"unproven":1,"ok":false}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestWaitGoneWaitsForAnExit(t *testing.T) {
	marker := MarkerEnv + "=" + randomHex(8)
	procs := sdktest.TrackProcesses(t)
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(procs.Environ(), marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if left := waitGone(marker, nil, 50*time.Millisecond); !slices.Equal(left, []int{cmd.Process.Pid}) {
		t.Fatalf("waitGone with a live process = %v; want [%d]", left, cmd.Process.Pid)
	}
	w := procscan.WatchPids([]int{cmd.Process.Pid}, marker)
	defer w.Close()
	if got := w.Running(); !slices.Equal(got, []int{cmd.Process.Pid}) {
		t.Fatalf("running = %v", got)
	}
	go func() { _ = cmd.Process.Kill() }()
	if left := waitGone(marker, nil, 10*time.Second); len(left) > 0 {
		t.Fatalf("waitGone after a kill = %v", left)
	}
	<-done
	if got := w.Running(); len(got) > 0 {
		t.Fatalf("running after the exit = %v", got)
	}
}

// stubBackend is a Backend value for target tests; it is never served.
type stubBackend struct{}

func (stubBackend) Describe(context.Context) (sdk.Description, error) { return sdk.Description{}, nil }
func (stubBackend) OpenSession(context.Context, sdk.SessionConfig, sdk.EventSink) (sdk.Session, error) {
	return nil, sdk.ErrUnsupported
}

func TestUnprovenIsNeitherPassNorFail(t *testing.T) {
	r := &run{log: newLogTail(64)}
	r.unprovenf("could not see %s", "it")
	r.notef("a note")
	if res := r.result("x", 0); res.Status != StatusUnproven || res.Message != "could not see it\na note" {
		t.Fatalf("result %+v", res)
	}
	r.errorf("a rule", "broke")
	if res := r.result("x", 0); res.Status != StatusFail || !strings.Contains(res.Message, "rule: a rule") {
		t.Fatalf("result %+v", res)
	}
}

func TestDescendantsFindsGrandchildren(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	cmd := exec.Command("sh", "-c", "sleep 60 & echo started; wait")
	cmd.Env = procs.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line := make([]byte, len("started"))
	if _, err := stdout.Read(line); err != nil {
		t.Fatal(err)
	}
	// The sleep was started before the shell printed: it is there now.
	got := descendants(os.Getpid())
	if !slices.Contains(got, cmd.Process.Pid) || len(got) < 2 {
		t.Fatalf("descendants of the test = %v; want the shell %d and its sleep", got, cmd.Process.Pid)
	}
	for _, pid := range got {
		if pid == cmd.Process.Pid {
			continue
		}
		if ppid, ok := parentOf(pid); ok && ppid == cmd.Process.Pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return
		}
	}
	t.Fatalf("no child of the shell among %v", got)
}
