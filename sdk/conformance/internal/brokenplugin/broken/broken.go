// Package broken is a backend for the conformance suite's own tests:
// well-behaved by default, and broken on demand, one defect per rule the
// suite checks, so the tests can prove that the suite passes a good
// plugin and names the check and the rule each defect breaks. The plugin
// binary (package brokenplugin) serves it; the in-process tests serve it
// as a value.
//
// It serves the CLI "stand-in" (persistent, interrupt, steer, resume)
// without running the configured command. A turn echoes its prompt; with
// CONFORMANCE_SLEEP in it (conformance.MarkSleep) it prints a line and
// runs until cancelled; with CONFORMANCE_FAIL it fails; with
// CONFORMANCE_RECALL it answers "I remember: " and the session's earlier
// prompts, which it keeps in a file named after the runtime session id
// under SessionConfig.LogDir, so a resumed session has them. Text steered
// into a turn is printed as "[steered] TEXT". Every session owns a child
// process (`sleep 3600`), its stand-in CLI, with the environment
// plugin.ChildEnv builds, killed when the session closes.
//
// Defects (New's list, comma-separated) and the check each one fails:
//
//	bad-describe      handshake_describe: Describe has no version and a
//	                  name with capitals and spaces
//	stdout-pollution  stdout_pollution: with log level trace (the check's
//	                  noisy environment) a line is printed on the real
//	                  stdout before the handshake (see PolluteStdout)
//	close-completes   open_close: an immediate close during a turn reports
//	                  the turn completed, not interrupted
//	double-complete   turn_event_order: every turn emits TurnCompleted twice
//	slow-cancel       cancel_bound: a cancel takes 2 s to end the turn
//	cancel-unproven   cancel_bound: a cancel is answered but ignored, and
//	                  the long turn ends on its own, "interrupted", 200 ms
//	                  after it started: a cancel would seem to work
//	cancel-unproven-quiet  cancel_bound: the same, with a long turn that
//	                  prints nothing and ends on its own 6 s after it
//	                  started: the suite's path for a turn that shows no
//	                  sign of work must not be fooled either
//	steer-discard     steer: urgent input is answered steered and thrown away
//	not-persistent    persistent: the session's CLI is started anew for
//	                  every turn, although persistent is declared
//	resume-forgets    resume: a resumed session reports resumed but has
//	                  none of its earlier prompts
//	crosstalk         concurrent_isolation: a turn's output starts with the
//	                  prompt of the previous turn of any session
//	truncate-large    large_and_unicode: output is cut after 64 KiB
//	silent-failure    errors_in_band: a failing turn is reported completed;
//	                  the failure is only logged
//	leak-env          child_environment: the child gets the plugin's whole
//	                  environment (os.Environ()), handshake cookie and
//	                  go-plugin variables included, plus the session's
//	leak-env-hidden   child_environment: the same leak, with the suite's and
//	                  the tests' markers and the session's Env left out, so
//	                  that no marker scan finds the child
//	leak-child        no_process_after_close, _host_cancel, _host_kill: the
//	                  session's child runs in a session of its own and is
//	                  never killed
package broken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// DefectsEnv lists the defects the plugin binary switches on.
const DefectsEnv = "BROKEN_PLUGIN_DEFECTS"

// Defects are the defect names New knows, in the order of the table above.
var Defects = []string{
	"bad-describe", "stdout-pollution", "close-completes", "double-complete", "slow-cancel", "cancel-unproven",
	"cancel-unproven-quiet", "steer-discard", "not-persistent", "resume-forgets", "crosstalk", "truncate-large", "silent-failure",
	"leak-env", "leak-env-hidden", "leak-child",
}

const (
	// CLIName is the one CLI the backend serves.
	CLIName    = "stand-in"
	markSleep  = "CONFORMANCE_SLEEP"
	markFail   = "CONFORMANCE_FAIL"
	markRecall = "CONFORMANCE_RECALL"
	idPrefix   = "broken-"
	// largeCut is where truncate-large cuts a turn's output.
	largeCut = 64 << 10
)

// markerPrefixes are the variables leak-env-hidden leaves out: the
// conformance suite's marker (suite.MarkerEnv) and sdktest's (sdktest.MarkerEnv).
var markerPrefixes = []string{"TTHOST_CONFORMANCE_RUN=", "TTHOST_TEST_MARKER="}

// Backend is the broken backend.
type Backend struct {
	defects map[string]bool
	// last is the prompt of the latest turn of any session (crosstalk).
	mu   sync.Mutex
	last string
}

// New returns the backend with the comma-separated defects switched on.
// An unknown name panics: a test asking for it is wrong.
func New(defects string) *Backend {
	b := &Backend{defects: map[string]bool{}}
	for _, d := range strings.Split(defects, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if !slices.Contains(Defects, d) {
			panic(fmt.Sprintf("broken: unknown defect %q; the defects are %s", d, strings.Join(Defects, ", ")))
		}
		b.defects[d] = true
	}
	return b
}

func (b *Backend) has(defect string) bool { return b.defects[defect] }

// PolluteStdout is what stdout-pollution does before the plugin serves:
// with the log level at trace, a line on the real stdout, where the host
// reads the handshake.
func (b *Backend) PolluteStdout() bool {
	return b.has("stdout-pollution") && os.Getenv(sdk.LogLevelEnv) == "trace"
}

// Describe implements sdk.Backend.
func (b *Backend) Describe(context.Context) (sdk.Description, error) {
	d := sdk.Description{
		Name:    "broken",
		Version: "0.0.1",
		Summary: "a backend that breaks the contract on demand, for the conformance suite's tests",
		CLIs: []sdk.CLI{{Name: CLIName, Capabilities: []sdk.Capability{
			sdk.CapPersistent, sdk.CapInterrupt, sdk.CapSteer, sdk.CapResume,
		}}},
	}
	if b.has("bad-describe") {
		d.Name, d.Version = "Broken Plugin", ""
	}
	return d, nil
}

// OpenSession implements sdk.Backend.
func (b *Backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName != CLIName {
		return nil, fmt.Errorf("%w: this backend serves the CLI %q, not %q", sdk.ErrInvalidConfig, CLIName, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, fmt.Errorf("%w: the command is empty", sdk.ErrInvalidConfig)
	}
	env, err := plugin.ChildEnv(cfg.Env)
	if err != nil {
		return nil, err
	}
	switch {
	case b.has("leak-env"):
		env = append(os.Environ(), env...)
	case b.has("leak-env-hidden"):
		env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			return slices.ContainsFunc(markerPrefixes, func(p string) bool { return strings.HasPrefix(kv, p) })
		})
	}
	s := &session{b: b, events: events, env: env, closed: make(chan struct{})}
	if err := s.startChild(); err != nil {
		return nil, err
	}

	ready := sdk.SessionReady{RuntimeSessionID: idPrefix + randomHex()}
	switch {
	case strings.HasPrefix(cfg.ResumeID, idPrefix):
		ready = sdk.SessionReady{RuntimeSessionID: cfg.ResumeID, Resumed: true}
	case cfg.ResumeID != "":
		ready.ContextLostReason = "no such session: " + cfg.ResumeID
	}
	if cfg.LogDir != "" {
		s.memory = filepath.Join(cfg.LogDir, "broken-memory", ready.RuntimeSessionID)
	}
	if ready.Resumed && !b.has("resume-forgets") {
		s.loadMemory()
	}
	events.Emit(sdk.SessionReadyEvent(ready))
	events.Emit(sdk.AwaitingInputEvent())
	return s, nil
}

type session struct {
	b      *Backend
	events sdk.EventSink
	env    []string
	memory string // the file of the session's prompts, "" for none

	mu        sync.Mutex
	child     *exec.Cmd
	childDone chan struct{}
	prompts   []string // earlier prompts of the conversation
	turn      *turn
	turns     int
	closing   bool
	closed    chan struct{}
}

type turn struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

// startChild starts the session's stand-in CLI; s.mu is held or the
// session is not shared yet.
func (s *session) startChild() error {
	child := exec.Command("sleep", "3600")
	child.Env = s.env
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if s.b.has("leak-child") {
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := child.Start(); err != nil {
		return fmt.Errorf("start the session's child: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = child.Wait()
		close(done)
	}()
	s.child, s.childDone = child, done
	return nil
}

// stopChild kills the session's child and waits for it.
func (s *session) stopChild() {
	if s.b.has("leak-child") {
		return
	}
	_ = syscall.Kill(-s.child.Process.Pid, syscall.SIGKILL)
	<-s.childDone
}

func (s *session) loadMemory() {
	if s.memory == "" {
		return
	}
	b, err := os.ReadFile(s.memory)
	if err != nil {
		return
	}
	for _, p := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		if p != "" {
			s.prompts = append(s.prompts, p)
		}
	}
}

// remember keeps a prompt of the conversation, in memory and on disk.
func (s *session) remember(text string) {
	s.mu.Lock()
	s.prompts = append(s.prompts, text)
	s.mu.Unlock()
	if s.memory == "" {
		return
	}
	_ = os.MkdirAll(filepath.Dir(s.memory), 0o755)
	f, err := os.OpenFile(s.memory, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	_, _ = f.WriteString(text + "\x00")
	_ = f.Close()
}

func (s *session) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return sdk.Delivery{}, fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
	}
	switch in.Kind {
	case sdk.InputTurn:
		if s.turn != nil {
			return sdk.Delivery{}, fmt.Errorf("%w: turn %s has not finished", sdk.ErrTurnRunning, s.turn.id)
		}
		return s.startLocked(in)
	case sdk.InputUrgent:
		if s.turn == nil {
			return s.startLocked(in)
		}
		if !s.b.has("steer-discard") {
			s.events.Emit(sdk.DeltaEvent(s.turn.id, "[steered] "+in.Text+"\n"))
		}
		return sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: s.turn.id}, nil
	case sdk.InputCancel:
		if s.turn == nil {
			return sdk.Delivery{Kind: sdk.DeliveryNoTurn}, nil
		}
		t := s.turn
		switch {
		case s.b.has("cancel-unproven"), s.b.has("cancel-unproven-quiet"):
		case s.b.has("slow-cancel"):
			time.AfterFunc(2*time.Second, t.cancel)
		default:
			t.cancel()
		}
		return sdk.Delivery{Kind: sdk.DeliveryCancelled, TurnID: t.id}, nil
	}
	return sdk.Delivery{}, fmt.Errorf("%w: input kind %v", sdk.ErrUnsupported, in.Kind)
}

func (s *session) startLocked(in sdk.Input) (sdk.Delivery, error) {
	if s.b.has("not-persistent") && s.turns > 0 {
		// A CLI per turn: the one of the last turn goes, a new one comes.
		s.stopChild()
		if err := s.startChild(); err != nil {
			return sdk.Delivery{}, err
		}
	}
	s.turns++
	ctx, cancel := context.WithCancel(context.Background())
	t := &turn{id: "turn-" + strconv.Itoa(s.turns), cancel: cancel, done: make(chan struct{})}
	s.turn = t
	s.events.Emit(sdk.TurnStartedEvent(t.id))
	go s.run(ctx, t, in)
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: t.id}, nil
}

func (s *session) run(ctx context.Context, t *turn, in sdk.Input) {
	defer close(t.done)
	s.b.mu.Lock()
	previous := s.b.last
	s.b.last = in.Text
	s.b.mu.Unlock()
	switch {
	case strings.Contains(in.Text, markSleep):
		quiet := s.b.has("cancel-unproven-quiet")
		if !quiet {
			s.events.Emit(sdk.DeltaEvent(t.id, "sleeping until cancelled\n"))
		}
		if s.b.has("cancel-unproven") || quiet {
			natural := 200 * time.Millisecond
			if quiet {
				natural = 6 * time.Second
			}
			timer := time.NewTimer(natural)
			select {
			case <-timer.C:
			case <-ctx.Done(): // a close still ends it
				timer.Stop()
			}
		} else {
			<-ctx.Done()
		}
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "cancelled"})
	case strings.Contains(in.Text, markFail) && s.b.has("silent-failure"):
		plugin.Logger().Error("the turn failed", "turn", t.id)
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusCompleted})
	case strings.Contains(in.Text, markFail):
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "failing as asked"})
	default:
		out := in.Text + "\n"
		if strings.Contains(in.Text, markRecall) {
			s.mu.Lock()
			out = "I remember: " + strings.Join(s.prompts, " | ") + "\n"
			s.mu.Unlock()
		} else {
			s.remember(in.Text)
		}
		if s.b.has("crosstalk") {
			out = previous + "\n" + out
		}
		if s.b.has("truncate-large") && len(out) > largeCut {
			out = strings.ToValidUTF8(out[:largeCut], "")
		}
		if in.TranscriptPath != "" {
			_ = os.MkdirAll(filepath.Dir(in.TranscriptPath), 0o755)
			_ = os.WriteFile(in.TranscriptPath, []byte(out), 0o644)
		}
		for len(out) > 0 {
			n := min(len(out), 1000)
			for n < len(out) && (out[n]&0xC0) == 0x80 { // whole runes only
				n++
			}
			s.events.Emit(sdk.DeltaEvent(t.id, out[:n]))
			out = out[n:]
		}
		s.finish(t, sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "echoed"})
	}
}

// finish ends the turn under the lock, so a new turn never finds it.
func (s *session) finish(t *turn, c sdk.TurnCompleted) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn = nil
	if s.closing && s.b.has("close-completes") {
		c = sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "closed"}
	}
	s.events.Emit(sdk.TurnCompletedEvent(t.id, c))
	if s.b.has("double-complete") {
		s.events.Emit(sdk.TurnCompletedEvent(t.id, c))
	}
	if !s.closing {
		s.events.Emit(sdk.AwaitingInputEvent())
	}
}

func (s *session) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.closed
		return nil
	}
	s.closing = true
	t := s.turn
	s.mu.Unlock()

	if t != nil {
		if mode == sdk.CloseGraceful {
			select {
			case <-t.done:
			case <-ctx.Done():
			}
		}
		t.cancel()
		<-t.done
	}
	s.mu.Lock()
	s.stopChild()
	s.mu.Unlock()
	s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
	close(s.closed)
	return nil
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
