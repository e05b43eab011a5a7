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

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/sdk"
)

const (
	// interruptTimeout bounds the turn/interrupt of a closing session.
	interruptTimeout = 2 * time.Second
	// interruptSettle is how long a closing session waits for codex's own
	// turn/completed after an accepted interrupt (codex sends it within a
	// millisecond); without it the turn is reported interrupted by us.
	interruptSettle = 250 * time.Millisecond
	// exitGrace is how long an app-server that closed its stdout may take
	// to exit before its group is killed.
	exitGrace = 2 * time.Second
)

// session is one agent's live `codex app-server` and its thread.
//
// One goroutine (run) owns the app-server's life: it starts it, does the
// handshake, waits for its end and emits the final events. The reader
// goroutine (rpcClient.readLoop) turns the wire into events in wire order;
// it never blocks on a write (server requests are answered from goroutines
// of their own). Send and Close only make requests and wait.
type session struct {
	cfg    settings
	events sdk.EventSink
	log    hclog.Logger
	decide decider // the approval policy; tests replace it

	// proc, rpc and startErr are written by run before ready is closed
	// and only read after it.
	proc     *appServer
	rpc      *rpcClient
	startErr error

	startCtx    context.Context // ends a startup in progress when Close begins
	stopStartup context.CancelFunc
	life        context.Context // ends when the app-server's output has ended
	endLife     context.CancelFunc
	ready       chan struct{} // closed when the startup has an outcome
	done        chan struct{} // closed after Exited, when every goroutine of the session has ended
	hurry       chan struct{} // closed by an immediate Close; it escalates a graceful one
	closeBegun  chan struct{} // closed when the first Close begins
	hurryOnce   sync.Once
	sendSlot    chan struct{}  // one Send at a time, so two turns cannot both start
	bg          sync.WaitGroup // goroutines answering server requests or interrupting orphans

	mu       sync.Mutex
	threadID string
	running  *turn // the turn codex is running for us, nil when idle
	starting *turn // the turn whose turn/start is on its way, not yet named
	closing  bool
	exited   bool   // Exited was emitted
	exitDesc string // how the app-server ended, for Send's errors
	usage    tokenBreakdown
}

var errClosed = fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)

// openSession starts a session's life in the background. tweak, when not
// nil, adjusts the session before anything runs (tests).
func openSession(cfg settings, events sdk.EventSink, tweak func(*session)) *session {
	s := &session{
		cfg:        cfg,
		events:     events,
		log:        plugin.Logger().With("cli", cfg.cliName),
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
		hurry:      make(chan struct{}),
		closeBegun: make(chan struct{}),
		sendSlot:   make(chan struct{}, 1),
	}
	s.decide = s.policy
	s.startCtx, s.stopStartup = context.WithCancel(context.Background())
	s.life, s.endLife = context.WithCancel(context.Background())
	if tweak != nil {
		tweak(s)
	}
	go s.run()
	return s
}

// run is the app-server's life, from start to the Exited event.
func (s *session) run() {
	defer close(s.done)
	defer s.endLife()
	if s.isClosing() {
		s.startErr = errClosed
		close(s.ready)
		s.finish(nil)
		return
	}
	p, err := startAppServer(s.cfg)
	if err != nil {
		s.startErr = fmt.Errorf("starting %s: %w", s.cfg.launch.argv[0], err)
		close(s.ready)
		s.finish(nil)
		return
	}
	s.proc = p
	s.rpc = newRPCClient(p.stdin, s.cfg.requestTimeout, s.log)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s.rpc.readLoop(p.stdout, s)
	}()

	ready, err := s.handshake()
	s.mu.Lock()
	if err == nil {
		s.threadID = ready.RuntimeSessionID
		// Emitted even when closing: the host saves the thread id.
		s.events.Emit(sdk.SessionReadyEvent(ready))
		for _, f := range s.cfg.launch.ignored {
			s.events.Emit(sdk.ErrorEvent("", "ignored_flag", fmt.Sprintf(
				"%s in the configured command was not passed to codex app-server, which refuses --profile; put the profile's settings in -c flags or options", f), false))
		}
		if !s.closing {
			s.events.Emit(sdk.AwaitingInputEvent())
		}
	} else {
		s.startErr = err
	}
	s.mu.Unlock()
	close(s.ready)
	if err != nil {
		p.kill()
	}

	<-readerDone
	select {
	case <-p.exited:
	case <-time.After(exitGrace):
		p.kill()
		<-p.exited
	}
	s.endLife()
	s.bg.Wait()
	s.finish(p)
}

// handshake initializes the app-server and starts or resumes the thread.
func (s *session) handshake() (sdk.SessionReady, error) {
	ctx := s.startCtx
	init := map[string]any{
		"clientInfo": map[string]any{"name": "tthost", "title": "tthost", "version": buildinfo.Version},
		"capabilities": map[string]any{
			"experimentalApi": false,
			// Noise for a worker: sent even for custom providers.
			"optOutNotificationMethods": []string{"account/rateLimits/updated", "remoteControl/status/changed"},
		},
	}
	if _, err := s.rpc.call(ctx, "initialize", init, nil); err != nil {
		return sdk.SessionReady{}, err
	}
	if err := s.rpc.notify("initialized", nil); err != nil {
		return sdk.SessionReady{}, fmt.Errorf("initialized: %w", err)
	}
	var lost string
	if id := s.cfg.resumeID; id != "" {
		got, err := s.openThread(ctx, "thread/resume", id)
		if err == nil {
			return sdk.SessionReady{RuntimeSessionID: got, Resumed: true}, nil
		}
		if ctx.Err() != nil || errors.Is(err, errGone) {
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
	raw, err := s.rpc.call(ctx, method, params, nil)
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

// finish emits the session's last events once the app-server is gone (p is
// nil when it never started): the reason as a fatal error when the end was
// not asked for, the running turn's outcome, and Exited.
func (s *session) finish(p *appServer) {
	var code *int
	var signal, desc, tail string
	if p != nil {
		code, signal, desc = p.exitInfo()
		tail = p.stderr.lastLines()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exited, s.exitDesc = true, desc
	if s.exitDesc == "" {
		s.exitDesc = "not running"
	}
	why := "codex app-server exited: " + desc
	if tail != "" {
		why += "; its last output on stderr:\n" + tail
	}
	// The fatal error comes before the running turn's outcome, so a host
	// knows the turn failed because the session is going away (and delivers
	// its work again on a new session rather than count a CLI failure).
	reason := sdk.ExitCLIExited
	switch {
	case s.closing:
		reason = sdk.ExitClosed
	case s.startErr != nil:
		msg := "codex did not start: " + s.startErr.Error()
		if desc != "" {
			msg += " (" + desc + ")"
		}
		if missingBinary(s.startErr) {
			msg += "; install it (npm install -g @openai/codex) or configure the CLI's command with its path"
		}
		if tail != "" {
			msg += "; its last output on stderr:\n" + tail
		}
		s.events.Emit(sdk.ErrorEvent("", "start_failed", msg, true))
	default:
		s.events.Emit(sdk.ErrorEvent("", "cli_exited", why, true))
	}
	if t := s.running; t != nil {
		if s.closing {
			s.completeLocked(t, sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: "the session was closed"})
		} else {
			s.completeLocked(t, sdk.TurnCompleted{Status: sdk.StatusFailed, Error: why})
		}
	}
	s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{ExitCode: code, Signal: signal, Reason: reason}))
}

// Close implements sdk.Session. Graceful: the running turn may finish
// until ctx ends, then it is interrupted; stdin is closed (codex exits on
// its own) and the group is killed if it has not by ctx's end. Immediate:
// the running turn is interrupted (bounded) and the group killed at once.
// Every call returns only when the app-server's whole group is gone and
// Exited was emitted.
func (s *session) Close(ctx context.Context, mode sdk.CloseMode) error {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	s.mu.Unlock()
	if first {
		close(s.closeBegun)
	}
	if mode != sdk.CloseGraceful {
		s.hurryOnce.Do(func() { close(s.hurry) })
	}
	// Whatever the mode, a startup in progress is abandoned: there is no
	// turn to let finish.
	s.stopStartup()
	if !first {
		<-s.done
		return nil
	}
	<-s.ready
	p := s.proc
	if p == nil {
		<-s.done
		return nil
	}
	if t := s.runningTurn(); t != nil && mode == sdk.CloseGraceful {
		select {
		case <-t.done:
		case <-ctx.Done():
		case <-s.hurry:
		case <-p.exited:
		}
	}
	if t := s.runningTurn(); t != nil && ctx.Err() == nil {
		ictx, cancel := context.WithTimeout(ctx, interruptTimeout)
		if _, err := s.interrupt(ictx, t); err == nil {
			select {
			case <-t.done:
			case <-time.After(interruptSettle):
			case <-ictx.Done():
			}
		}
		cancel()
	}
	s.rpc.closeInput()
	if mode == sdk.CloseGraceful {
		select {
		case <-p.exited:
		case <-ctx.Done():
		case <-s.hurry:
		}
	}
	p.kill()
	<-s.done
	return nil
}

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *session) runningTurn() *turn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// usable says why the session takes no input, or nil.
func (s *session) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return errClosed
	case s.exited:
		return fmt.Errorf("codex app-server exited (%s): open a new session", s.exitDesc)
	}
	return nil
}

// missingBinary reports a start error that means codex is not installed
// where the command says.
func missingBinary(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}
