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

	"github.com/tthost/tthost/plugins/internal/jsonrpc"
	"github.com/tthost/tthost/plugins/internal/stderrtail"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

const (
	// exitGrace is how long an agent that was asked to stop may take to
	// exit before its group is killed.
	exitGrace = 2 * time.Second
	// replayQuiet and replayMax bound the wait after session/load for the
	// replayed history to end: an agent may answer session/load before it
	// has sent the whole replay (Gemini CLI answers after the first
	// chunk), and the replay must not run into the first prompt's output.
	replayQuiet = 300 * time.Millisecond
	replayMax   = 10 * time.Second
	// cancelGraceMax bounds how long a stalled turn's cancel may take to
	// be answered before the agent is killed and restarted.
	cancelGraceMax = 10 * time.Second
)

// session is one agent's live ACP agent process and its ACP session: a
// plugin.Session, which keeps the contract (turn ids, the order of events,
// input before the agent is ready, close), driven over ACP.
//
// The reader goroutine (jsonrpc.Client.ReadLoop) turns the wire into
// events in wire order: session/update notifications, the answers to
// session/prompt (sent with Client.Go, answered on the reader), and the
// agent's requests, each answered from a goroutine of its own. The
// Driver's hooks make requests and wait. A stalled turn's agent is killed
// and replaced by a new process (a new generation, agentProc), whose
// reader takes over; the old reader's end is not the session's end.
type session struct {
	*plugin.Session
	cfg    settings
	log    hclog.Logger
	decide decider          // the permission policy; tests replace it
	now    func() time.Time // the gemini minute guard's clock; tests replace it
	stderr *stderrtail.Tail
	opened chan struct{} // closed once Session is set: start may Emit

	spawnErr error
	bg       sync.WaitGroup // goroutines answering the agent's requests, sending follow-up prompts

	mu           sync.Mutex
	agent        *agentProc // the current process; nil when it could not start
	sessionID    string
	loadSession  bool // the agent declared agentCapabilities.loadSession
	authMethods  []authMethod
	authed       bool
	running      *turn // the turn the agent runs for us, nil when idle
	lastUpdate   time.Time
	closing      bool
	restarting   chan struct{} // closed when a restart after a stall is done; nil if none
	restartStop  context.CancelFunc
	loadWaitNote string // why session/load waited (the gemini minute guard)
}

// agentProc is one generation of the agent's process and its wire.
type agentProc struct {
	proc     *plugin.Process
	rpc      *jsonrpc.Client
	done     chan struct{} // closed when its reader has ended
	replaced bool          // killed for a restart: its end is not the session's (under session.mu)
}

// openSession starts the agent and returns at once: the Session's Start
// does the handshake in the background. tweak, when not nil, adjusts the
// session before anything runs (tests).
func openSession(cfg settings, events sdk.EventSink, tweak func(*session)) *session {
	s := &session{
		cfg:    cfg,
		log:    plugin.Logger().With("cli", cfg.cliName),
		stderr: &stderrtail.Tail{},
		now:    time.Now,
		opened: make(chan struct{}),
	}
	s.decide = s.policy
	if tweak != nil {
		tweak(s)
	}
	var a *agentProc
	if cfg.logPath != "" {
		// One log for every generation of the agent.
		s.spawnErr = s.stderr.OpenLog(cfg.logPath)
	}
	if s.spawnErr == nil {
		a, s.spawnErr = s.spawn()
	}
	s.agent = a
	s.Session = plugin.NewSession(events, plugin.Driver{
		Start:     s.start,
		StartTurn: s.startTurn,
		Steer:     s.steer,
		SteerMode: sdk.SteerMode(cfg.steerMode),
		Cancel:    s.cancel,
		Stop:      s.stop,
	})
	close(s.opened)
	if a != nil {
		go s.read(a)
	}
	return s
}

// spawn starts a new generation of the agent.
func (s *session) spawn() (*agentProc, error) {
	p, err := startAgent(s.cfg, s.stderr)
	if err != nil {
		return nil, err
	}
	return &agentProc{
		proc: p,
		rpc: jsonrpc.NewClient(p, jsonrpc.Options{
			Name: "the ACP agent", Version2: true, Timeout: s.cfg.requestTimeout, Log: s.log,
		}),
		done: make(chan struct{}),
	}, nil
}

// read follows a's output until it ends, then reports the end: the
// agent's exit, quoted from its stderr, unless a was replaced.
func (s *session) read(a *agentProc) {
	a.rpc.ReadLoop(a.proc.Output(), wire{s, a})
	<-a.proc.Done()
	close(a.done)
	s.mu.Lock()
	replaced := a.replaced
	s.mu.Unlock()
	if replaced {
		return
	}
	s.bg.Wait()
	s.stderr.Close()
	why := "the ACP agent exited: " + a.proc.Status()
	why += s.stderr.Quote()
	s.Lost(errors.New(why))
}

// current returns the agent's current generation.
func (s *session) current() *agentProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent
}

// stop is the Driver's Stop: the current agent, and a restart in progress.
func (s *session) stop(ctx context.Context, mode sdk.CloseMode) sdk.ExitInfo {
	s.mu.Lock()
	s.closing = true
	restarting, stopRestart := s.restarting, s.restartStop
	s.mu.Unlock()
	if restarting != nil {
		stopRestart()
		<-restarting
	}
	a := s.current()
	if a == nil {
		return sdk.ExitInfo{}
	}
	// Graceful: stdin closed (agents exit at the end of their input) until
	// ctx ends; then, as at once for immediate, SIGTERM, exitGrace, and the
	// group and the tag killed.
	if mode == sdk.CloseGraceful && s.cfg.claudeACP {
		// claude-code-acp does not exit at the end of its input while a
		// session is open (its Claude Code keeps it alive): SIGTERM, which
		// both handle, comes after exitGrace rather than at ctx's end.
		c, cancel := context.WithTimeout(ctx, exitGrace)
		defer cancel()
		ctx = c
	}
	// Close returns once every process of the agent has exited, not only
	// been killed, so the session reports its end (and the plugin may
	// exit) with nothing left tearing itself down.
	return a.proc.Close(ctx, mode)
}

// start is the Driver's Start: the handshake, then a new or loaded
// session.
func (s *session) start(ctx context.Context) (sdk.SessionReady, error) {
	<-s.opened
	if s.spawnErr != nil {
		s.stderr.Close()
		return sdk.SessionReady{}, s.startError(s.spawnErr, nil)
	}
	if note := s.cfg.rootNote; note != "" {
		s.log.Info(note)
		s.Emit(sdk.ErrorEvent("", "root_sandbox", note, false))
	}
	a := s.current()
	ready, err := s.handshake(ctx, a, s.cfg.resumeID)
	if err != nil {
		a.proc.Kill()
		<-a.proc.Done()
		return sdk.SessionReady{}, s.startError(err, a)
	}
	s.mu.Lock()
	note := s.loadWaitNote
	s.mu.Unlock()
	if note != "" {
		s.Emit(sdk.ErrorEvent("", "load_delayed", note, false))
	}
	return ready, nil
}

// startError says why the agent did not start, and what to do.
func (s *session) startError(err error, a *agentProc) error {
	msg := err.Error()
	if a != nil {
		msg += " (" + a.proc.Status() + ")"
	}
	if missingBinary(err) || (a != nil && a.proc.ExitInfo().ExitCode != nil && *a.proc.ExitInfo().ExitCode == 127) {
		msg += "; install the agent or configure the CLI's command with its path"
	}
	if s.cfg.rootNote != "" && !s.cfg.sandboxSet {
		// The config's IS_SANDBOX keeps claude-code-acp from starting as root.
		msg += "; " + s.cfg.rootNote
	}
	msg += s.stderr.Quote()
	return errors.New("the ACP agent did not start: " + msg)
}

// handshake initializes a and opens the ACP session: session/load of
// resumeID when the agent can load sessions, else (or when the load
// fails) session/new, with ContextLostReason saying why.
func (s *session) handshake(ctx context.Context, a *agentProc, resumeID string) (sdk.SessionReady, error) {
	if err := s.initialize(ctx, a); err != nil {
		return sdk.SessionReady{}, err
	}
	if s.cfg.authMethod != "" {
		// Configured explicitly: authenticate before anything asks.
		if err := s.authenticate(ctx, a, nil); err != nil {
			return sdk.SessionReady{}, err
		}
	}
	s.mu.Lock()
	canLoad := s.loadSession
	s.mu.Unlock()
	var lost string
	switch {
	case resumeID == "":
	case !canLoad:
		lost = fmt.Sprintf("the ACP agent does not declare loadSession, so session %s cannot be resumed; a new session was started without the earlier conversation", resumeID)
	default:
		err := s.load(ctx, a, resumeID)
		if err == nil {
			return sdk.SessionReady{RuntimeSessionID: resumeID, Resumed: true}, nil
		}
		if ctx.Err() != nil || errors.Is(err, jsonrpc.ErrGone) || errors.Is(err, errAuth) {
			return sdk.SessionReady{}, err
		}
		// A session the agent cannot find (another HOME, a deleted chat,
		// "Invalid session identifier") must not leave the agent stuck: a
		// new session, and the host is told the context is gone.
		lost = fmt.Sprintf("the ACP agent could not load session %s (%v); a new session was started without the earlier conversation", resumeID, err)
	}
	raw, err := s.withAuth(ctx, a, "session/new", map[string]any{"cwd": s.cfg.workdir, "mcpServers": []any{}})
	if err != nil {
		return sdk.SessionReady{}, err
	}
	var res struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.SessionID == "" {
		return sdk.SessionReady{}, fmt.Errorf("session/new: the ACP agent answered without a session id: %.200s", raw)
	}
	s.mu.Lock()
	s.sessionID = res.SessionID
	s.mu.Unlock()
	return sdk.SessionReady{RuntimeSessionID: res.SessionID, ContextLostReason: lost}, nil
}

// initialize negotiates the protocol version and learns the agent's
// capabilities and auth methods.
func (s *session) initialize(ctx context.Context, a *agentProc) error {
	params := map[string]any{
		"protocolVersion": protocolVersion,
		// Honest: tthost serves no file system and no terminal to the
		// agent (it runs tools itself, in the workdir).
		"clientCapabilities": map[string]any{
			"fs":       map[string]any{"readTextFile": false, "writeTextFile": false},
			"terminal": false,
		},
		"clientInfo": map[string]any{"name": "tthost", "title": "tthost", "version": buildVersion()},
	}
	raw, err := a.rpc.Call(ctx, "initialize", params, nil)
	if err != nil {
		return err
	}
	init, err := decodeInit(raw)
	if err != nil {
		return err
	}
	if init.ProtocolVersion != protocolVersion {
		return fmt.Errorf("the ACP agent %s speaks ACP protocol version %d; tthost speaks version %d: use an agent release that supports version %d",
			agentName(init), init.ProtocolVersion, protocolVersion, protocolVersion)
	}
	s.mu.Lock()
	s.loadSession = init.AgentCapabilities.LoadSession
	s.authMethods = init.AuthMethods
	s.mu.Unlock()
	s.log.Debug("ACP agent initialized", "agent", agentName(init), "loadSession", init.AgentCapabilities.LoadSession)
	return nil
}

func agentName(init initResult) string {
	name := init.AgentInfo.Name
	if name == "" {
		return "(no agentInfo)"
	}
	if init.AgentInfo.Version != "" {
		name += " " + init.AgentInfo.Version
	}
	return name
}

// load sends session/load, after the gemini minute guard, and waits for
// the replayed history to end.
func (s *session) load(ctx context.Context, a *agentProc, id string) error {
	if s.cfg.gemini {
		if err := s.geminiLoadGuard(ctx, id); err != nil {
			return err
		}
	}
	s.touchUpdate()
	if _, err := s.withAuth(ctx, a, "session/load", map[string]any{"sessionId": id, "cwd": s.cfg.workdir, "mcpServers": []any{}}); err != nil {
		return err
	}
	s.mu.Lock()
	s.sessionID = id
	s.mu.Unlock()
	// Updates with no turn running are history (replayed by the load) and
	// dropped; wait until they stop, so none runs into the first turn.
	deadline := time.Now().Add(replayMax)
	for {
		s.mu.Lock()
		quietAt := s.lastUpdate.Add(replayQuiet)
		s.mu.Unlock()
		wait := time.Until(quietAt)
		if wait <= 0 || time.Now().After(deadline) {
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}

func (s *session) touchUpdate() {
	s.mu.Lock()
	s.lastUpdate = time.Now()
	s.mu.Unlock()
}

// errAuth marks an authentication the agent needs and tthost cannot do.
var errAuth = errors.New("authentication needed")

// withAuth calls method; when the agent answers that authentication is
// required (-32000), it authenticates once and calls again.
func (s *session) withAuth(ctx context.Context, a *agentProc, method string, params any) (json.RawMessage, error) {
	raw, err := a.rpc.Call(ctx, method, params, nil)
	var re *jsonrpc.Error
	if err == nil || !errors.As(err, &re) || re.Code != codeAuthRequired {
		return raw, err
	}
	s.mu.Lock()
	authed := s.authed
	s.mu.Unlock()
	if authed {
		return nil, fmt.Errorf("%w: %s still requires authentication after authenticate (%v): check the agent's credentials", errAuth, method, re)
	}
	if err := s.authenticate(ctx, a, re); err != nil {
		return nil, err
	}
	return a.rpc.Call(ctx, method, params, nil)
}

// authenticate sends authenticate with the configured method, or the one
// the environment provides; asked is the agent's auth-required error, if
// it asked.
func (s *session) authenticate(ctx context.Context, a *agentProc, asked *jsonrpc.Error) error {
	s.mu.Lock()
	methods := s.authMethods
	s.mu.Unlock()
	id, err := chooseAuth(s.cfg, methods)
	if err != nil {
		why := ""
		if asked != nil {
			why = fmt.Sprintf(" (it answered: %v)", asked)
		}
		return fmt.Errorf("%w: the ACP agent requires authentication%s and %v", errAuth, why, err)
	}
	if _, err := a.rpc.Call(ctx, "authenticate", map[string]any{"methodId": id}, nil); err != nil {
		return fmt.Errorf("%w: authenticate with method %q failed: %v; check the credentials in the agent's environment or choose another auth_method", errAuth, id, err)
	}
	s.mu.Lock()
	s.authed = true
	s.mu.Unlock()
	return nil
}

// authFromEnv maps auth method ids agents offer to the variable that
// provides their credential.
var authFromEnv = []struct{ method, env string }{
	{"gemini-api-key", "GEMINI_API_KEY"},
	{"gateway", "GOOGLE_GEMINI_BASE_URL"},
	{"vertex-ai", "GOOGLE_API_KEY"},
	{"anthropic-api-key", "ANTHROPIC_API_KEY"},
	{"openai-api-key", "OPENAI_API_KEY"},
	{"codex-api-key", "CODEX_API_KEY"},
}

// chooseAuth picks the auth method: the option auth_method (which must be
// one the agent offers), else the first the environment provides.
func chooseAuth(cfg settings, methods []authMethod) (string, error) {
	ids := make([]string, 0, len(methods))
	for _, m := range methods {
		ids = append(ids, m.ID)
	}
	if cfg.authMethod != "" {
		for _, id := range ids {
			if id == cfg.authMethod {
				return id, nil
			}
		}
		return "", fmt.Errorf("the option auth_method %q is not one of the agent's methods %q", cfg.authMethod, ids)
	}
	for _, c := range authFromEnv {
		for _, id := range ids {
			if id == c.method && cfg.getenv(c.env) != "" {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("no auth method is configured: set the option auth_method to one of %q, or give the agent the credential one of them needs in its environment (e.g. GEMINI_API_KEY for gemini-api-key)", ids)
}

// missingBinary reports a start error that means the agent is not
// installed where the command says.
func missingBinary(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}
