package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/plugins/internal/jsonrpc"
	"github.com/tthost/tthost/plugins/internal/stderrtail"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

const (
	// interruptTimeout bounds a turn/interrupt whose Send has no deadline.
	interruptTimeout = 2 * time.Second
	// exitGrace is how long an app-server that was asked to stop may take
	// to exit before its group is killed.
	exitGrace = 2 * time.Second
)

// session is one agent's live `codex app-server` and its thread: a
// plugin.Session, which keeps the contract (turn ids, the order of events,
// input before codex is ready, close), driven by codex's JSON-RPC.
//
// The reader goroutine (jsonrpc.Client.ReadLoop) turns the wire into events in
// wire order; it never blocks on a write (server requests are answered
// from goroutines of their own). The Driver's hooks only make requests and
// wait. When the app-server's output ends, the reader reports the end
// (Session.Lost), which the Session ignores during a Close.
type session struct {
	*plugin.Session
	cfg    settings
	log    hclog.Logger
	decide decider // the approval policy; tests replace it

	proc     *plugin.Process // nil when it could not start (spawnErr)
	spawnErr error
	stderr   *stderrtail.Tail
	rpc      *jsonrpc.Client

	// closeBegun is closed when the first Close begins.
	closeBegun <-chan struct{}
	life       context.Context // ends when the app-server's output has ended
	endLife    context.CancelFunc
	bg         sync.WaitGroup // goroutines answering server requests or interrupting orphans

	mu       sync.Mutex
	threadID string
	running  *turn // the turn codex is running for us, nil when idle
	starting *turn // the turn whose turn/start is on its way, not yet named
	usage    tokenBreakdown
}

// openSession starts the app-server and returns at once: the Session's
// Start does the handshake in the background. tweak, when not nil, adjusts
// the session before anything runs (tests).
func openSession(cfg settings, events sdk.EventSink, tweak func(*session)) *session {
	s := &session{
		cfg:    cfg,
		log:    plugin.Logger().With("cli", cfg.cliName),
		stderr: &stderrtail.Tail{},
	}
	s.decide = s.policy
	s.life, s.endLife = context.WithCancel(context.Background())
	if tweak != nil {
		tweak(s)
	}
	s.proc, s.spawnErr = startAppServer(cfg, s.stderr)
	if s.proc != nil {
		s.rpc = jsonrpc.NewClient(s.proc, jsonrpc.Options{Name: "codex app-server", Timeout: cfg.requestTimeout, Log: s.log})
	}
	s.Session = plugin.NewSession(events, plugin.Driver{
		Start:     s.start,
		StartTurn: s.startTurn,
		Steer:     s.steer,
		Cancel:    s.cancel,
		Stop: func(ctx context.Context, mode sdk.CloseMode) sdk.ExitInfo {
			if s.proc == nil {
				return sdk.ExitInfo{}
			}
			// Graceful: stdin closed (codex exits on its own) until ctx
			// ends; then, as at once for immediate, SIGTERM, exitGrace,
			// and the group and the tag killed.
			return s.proc.Close(ctx, mode)
		},
	})
	s.closeBegun = s.CloseBegun()
	if s.proc == nil {
		s.endLife()
		return s
	}
	go s.read()
	return s
}

// read follows the app-server's output until it ends, then reports the
// end: its exit, quoted from its stderr.
func (s *session) read() {
	s.rpc.ReadLoop(s.proc.Output(), s)
	s.endLife()
	<-s.proc.Done()
	s.bg.Wait()
	s.stderr.Close()
	why := "codex app-server exited: " + s.proc.Status()
	why += s.stderr.Quote()
	s.Lost(errors.New(why))
}

// start initializes the app-server and starts or resumes the thread.
func (s *session) start(ctx context.Context) (sdk.SessionReady, error) {
	if s.spawnErr != nil {
		return sdk.SessionReady{}, s.startError(s.spawnErr)
	}
	ready, err := s.handshake(ctx)
	if err != nil {
		// The error quotes how codex ended and its last words.
		s.proc.Kill()
		<-s.proc.Done()
		return sdk.SessionReady{}, s.startError(err)
	}
	s.mu.Lock()
	s.threadID = ready.RuntimeSessionID
	s.mu.Unlock()
	for _, f := range s.cfg.launch.ignored {
		// Emitted after SessionReady, which the host saves first.
		s.Emit(sdk.ErrorEvent("", "ignored_flag", fmt.Sprintf(
			"%s in the configured command was not passed to codex app-server, which refuses --profile; put the profile's settings in -c flags or options", f), false))
	}
	return ready, nil
}

// startError says why codex did not start, and what to do.
func (s *session) startError(err error) error {
	msg := err.Error()
	if s.proc != nil {
		msg += " (" + s.proc.Status() + ")"
	}
	if missingBinary(err) {
		msg += "; install it (npm install -g @openai/codex) or configure the CLI's command with its path"
	}
	msg += s.stderr.Quote()
	return errors.New("codex did not start: " + msg)
}

// handshake initializes the app-server and starts or resumes the thread.
func (s *session) handshake(ctx context.Context) (sdk.SessionReady, error) {
	init := map[string]any{
		"clientInfo": map[string]any{"name": "tthost", "title": "tthost", "version": buildinfo.Version},
		"capabilities": map[string]any{
			"experimentalApi": false,
			// Noise for a worker: sent even for custom providers.
			"optOutNotificationMethods": []string{"account/rateLimits/updated", "remoteControl/status/changed"},
		},
	}
	if _, err := s.rpc.Call(ctx, "initialize", init, nil); err != nil {
		return sdk.SessionReady{}, err
	}
	if err := s.rpc.Notify("initialized", nil); err != nil {
		return sdk.SessionReady{}, fmt.Errorf("initialized: %w", err)
	}
	var lost string
	if id := s.cfg.resumeID; id != "" {
		got, err := s.openThread(ctx, "thread/resume", id)
		if err == nil {
			return sdk.SessionReady{RuntimeSessionID: got, Resumed: true}, nil
		}
		if ctx.Err() != nil || errors.Is(err, jsonrpc.ErrGone) {
			return sdk.SessionReady{}, err
		}
		// A thread codex cannot find ("no rollout found": another
		// CODEX_HOME, a deleted session) must not leave the agent stuck:
		// a new thread, and the host is told the context is gone.
		lost = fmt.Sprintf("codex could not resume thread %s (%v); a new thread was started without the earlier conversation", id, err)
	}
	got, err := s.openThread(ctx, "thread/start", "")
	if err != nil {
		return sdk.SessionReady{}, err
	}
	return sdk.SessionReady{RuntimeSessionID: got, ContextLostReason: lost}, nil
}

// openThread sends thread/start, or thread/resume of resumeID, and returns
// the thread id codex answered with.
func (s *session) openThread(ctx context.Context, method, resumeID string) (string, error) {
	params := map[string]any{
		"cwd":            s.cfg.workdir,
		"approvalPolicy": s.cfg.approvalPolicy,
		"sandbox":        s.cfg.sandbox, // kebab-case here, unlike turn/start's sandboxPolicy
	}
	if s.cfg.model != "" {
		params["model"] = s.cfg.model
	}
	if s.cfg.effort != "" {
		// thread/start has no effort field; a per-thread config override
		// sets it for the thread's first turn and every later one.
		params["config"] = map[string]any{"model_reasoning_effort": s.cfg.effort}
	}
	if resumeID != "" {
		params["threadId"] = resumeID
		// The history stays in codex; the host does not need it back.
		params["excludeTurns"] = true
	}
	raw, err := s.rpc.Call(ctx, method, params, nil)
	if err != nil {
		return "", err
	}
	var res struct {
		Thread struct {
			ID string `json:"id"`
		} `json:"thread"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.Thread.ID == "" {
		return "", fmt.Errorf("%s: codex answered without a thread id: %.200s", method, raw)
	}
	return res.Thread.ID, nil
}

// missingBinary reports a start error that means codex is not installed
// where the command says.
func missingBinary(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}
