package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/plugins/internal/stderrtail"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

const (
	// startTimeout bounds claude's answer to the initialize request.
	startTimeout = 60 * time.Second
	// controlTimeout bounds claude's answer to an interrupt.
	controlTimeout = 5 * time.Second
	// interruptSettle is how long a cancelled turn may take to end after
	// claude acknowledged the interrupt before it is ended here: claude
	// drops a queued line on interrupt and then has nothing to answer.
	interruptSettle = 3 * time.Second
	// writeTimeout bounds each line written to claude.
	writeTimeout = 10 * time.Second
	// exitGrace is how long claude may take to exit after its stdin was
	// closed or it got SIGTERM, before its group is killed.
	exitGrace = 2 * time.Second
)

// errProcessEnded is what a control request waiting for claude's answer
// gets when claude's output ended.
var errProcessEnded = errors.New("claude's output ended")

// session is one agent's live claude: a plugin.Session driven by claude's
// stream-json. One claude process serves every turn, until a stalled turn
// makes the backend restart it (--resume, same session id) or it dies
// (Session.Lost).
type session struct {
	*plugin.Session
	cfg    settings
	log    hclog.Logger
	decide decider // the approval policy; tests replace it
	stderr *stderrtail.Tail

	bg        sync.WaitGroup
	opened    chan struct{} // closed once Session is set: Start may use it
	startDone chan struct{} // closed when Start has returned
	stopCtx   context.Context
	stopNow   context.CancelFunc

	mu        sync.Mutex
	proc      *plugin.Process // the current claude; nil before the first start
	gen       int             // bumped at every process start and at a deliberate end
	started   bool            // Start succeeded
	stopping  bool            // Stop was called: no restart
	sessionID string          // claude's session id, as last reported
	cost      float64         // the process's running total_cost_usd
	cur       *turn           // the running turn, until every line given for it is answered
	lines     map[string]*lineRec
	taken     []*lineRec // lines claude replayed in the CLI turn it runs
	stale     bool       // the CLI turn claude runs answers a line of an ended turn
	startErr  string     // a result's errors before any turn (a resume that failed)
	pending   map[string]*pendingControl
	asks      map[string]context.CancelFunc // claude's permission requests being decided
	seq       int
}

// lineRec is a user line given to claude, known by the uuid it carries
// (claude replays it with that uuid when it takes it).
type lineRec struct {
	t     *turn
	steer bool
}

type pendingControl struct {
	gen int
	ch  chan controlResult
}

type controlResult struct {
	resp *controlResponse
	err  error
}

// openSession returns at once; the Session's Start starts claude in the
// background. tweak, when not nil, adjusts the session before anything
// runs (tests).
func openSession(cfg settings, events sdk.EventSink, tweak func(*session)) *session {
	s := &session{
		cfg:       cfg,
		log:       plugin.Logger().With("cli", cliClaude),
		stderr:    &stderrtail.Tail{},
		opened:    make(chan struct{}),
		startDone: make(chan struct{}),
		lines:     map[string]*lineRec{},
		pending:   map[string]*pendingControl{},
		asks:      map[string]context.CancelFunc{},
	}
	s.decide = s.policy
	s.stopCtx, s.stopNow = context.WithCancel(context.Background())
	if tweak != nil {
		tweak(s)
	}
	if cfg.logPath != "" {
		if err := s.stderr.OpenLog(cfg.logPath); err != nil {
			s.log.Warn("no session log", "error", err)
		}
	}
	s.Session = plugin.NewSession(events, plugin.Driver{
		Start:     s.start,
		StartTurn: s.startTurn,
		Steer:     s.steer,
		// Claude itself takes a user line read mid-turn into the turn
		// (folded at a tool boundary, or as its follow-up CLI turn).
		SteerMode:  sdk.SteerNative,
		Cancel:     s.cancel,
		Stop:       s.stop,
		TurnPrefix: "t",
	})
	close(s.opened)
	return s
}

// start starts claude with a fresh session id, or resumes cfg.resumeID:
// a session claude cannot resume (its transcript is gone) starts fresh,
// and SessionReady says the context was lost.
func (s *session) start(ctx context.Context) (sdk.SessionReady, error) {
	defer close(s.startDone)
	<-s.opened
	if s.cfg.sandboxed {
		const msg = "tthost runs as root: IS_SANDBOX=1 was set for claude, which refuses --dangerously-skip-permissions as root otherwise; " +
			"claude's tools run as root without asking (set permission_mode prompt to have them approved)"
		s.log.Info(msg)
		s.Emit(sdk.ErrorEvent("", "root_sandbox", msg, false))
	}
	for _, f := range s.cfg.launch.ignored {
		s.Emit(sdk.ErrorEvent("", "ignored_flag", fmt.Sprintf(
			"%s in the configured command was not passed to claude: the claude backend does not know it; put it in a kept flag or an option", f), false))
	}
	lost := ""
	if id := s.cfg.resumeID; id != "" {
		err := s.spawn(ctx, id, "--resume="+id)
		if err == nil {
			return s.ready(sdk.SessionReady{RuntimeSessionID: s.currentID(), Resumed: true}), nil
		}
		if ctx.Err() != nil || !resumeGone(err) {
			return sdk.SessionReady{}, err
		}
		lost = fmt.Sprintf("claude could not resume session %s (%v); a new session was started without the earlier conversation", id, err)
		s.log.Warn("context lost", "reason", lost)
	}
	id := uuid.NewString()
	if err := s.spawn(ctx, id, "--session-id="+id); err != nil {
		return sdk.SessionReady{}, err
	}
	return s.ready(sdk.SessionReady{RuntimeSessionID: s.currentID(), ContextLostReason: lost}), nil
}

func (s *session) ready(r sdk.SessionReady) sdk.SessionReady {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return r
}

func (s *session) currentID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionID
}

// resumeGone reports a start error that means claude has no session to
// resume by that id: claude 2.1.330 prints "No conversation found with
// session ID: <id>" for a UUID without a transcript, and "--resume requires
// a valid session ID or session title" for an id that is neither, and
// exits 1 either way (docs/compatibility.md).
func resumeGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "No conversation found") || strings.Contains(msg, "requires a valid session ID")
}

// spawn starts a claude process for session id with sessionFlag, makes
// it the session's, and waits for its answer to initialize: claude prints
// nothing before its first input, but answers that at once. On failure
// the process is gone when spawn returns, and the error quotes it.
func (s *session) spawn(ctx context.Context, id, sessionFlag string) error {
	cfg := s.cfg.process(sessionFlag)
	cfg.Stderr = s.stderr
	p, err := plugin.StartProcess(cfg)
	if err != nil {
		return s.startError(nil, err)
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		p.Kill()
		<-p.Done()
		return errors.New("the session was closed while claude started")
	}
	s.gen++
	gen := s.gen
	s.proc, s.sessionID, s.cost, s.startErr = p, id, 0, ""
	s.taken, s.stale = nil, false
	s.bg.Add(1) // under the lock that saw no Stop: Stop's Wait covers it
	s.mu.Unlock()
	go s.read(p, gen)

	ictx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	_, err = s.control(ictx, p, gen, "initialize")
	if err == nil {
		return nil
	}
	s.mu.Lock()
	if s.gen == gen {
		s.gen++ // this process's end is not the session's
	}
	why := s.startErr
	s.mu.Unlock()
	p.Kill()
	<-p.Done()
	if why != "" {
		err = errors.New(why)
	}
	return s.startError(p, err)
}

// startError says why claude did not start, and what to do.
func (s *session) startError(p *plugin.Process, err error) error {
	msg := err.Error()
	if p != nil {
		msg += " (" + p.Status() + ")"
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		msg += "; install it (npm install -g @anthropic-ai/claude-code) or configure the CLI's command with its path"
	}
	msg += s.stderr.Quote()
	return errors.New("claude did not start: " + msg)
}

// control sends a control request of ours to p and waits for the answer.
func (s *session) control(ctx context.Context, p *plugin.Process, gen int, subtype string) (*controlResponse, error) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("tthost_%s_%d", subtype, s.seq)
	pc := &pendingControl{gen: gen, ch: make(chan controlResult, 1)}
	if s.gen != gen {
		s.mu.Unlock()
		return nil, errProcessEnded
	}
	s.pending[id] = pc
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	if _, err := p.Write(controlRequestLine(id, subtype)); err != nil {
		return nil, fmt.Errorf("%s: %w", subtype, err)
	}
	select {
	case r := <-pc.ch:
		if r.err != nil {
			return nil, fmt.Errorf("%s: %w", subtype, r.err)
		}
		if r.resp.Subtype != "success" {
			return nil, fmt.Errorf("%s: claude answered %s: %s", subtype, r.resp.Subtype, r.resp.Error)
		}
		return r.resp, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no answer from claude: %w", subtype, context.Cause(ctx))
	}
}

// read follows one claude process's output until it ends. When that
// process is still the session's (not replaced by a restart, nor given up
// during start), its end is the session's: Lost.
func (s *session) read(p *plugin.Process, gen int) {
	defer s.bg.Done()
	lr := plugin.NewLineReader(p.Output(), 16<<20)
	for {
		text, err := lr.Next()
		if err == nil || (text != "" && !errors.Is(err, plugin.ErrLineTooLong)) {
			s.handleLine(gen, text)
		} else if errors.Is(err, plugin.ErrLineTooLong) {
			s.invalid(gen, text, err)
		}
		if err != nil && !errors.Is(err, plugin.ErrLineTooLong) {
			break
		}
		if lr.Buffered() == 0 {
			s.idle()
		}
	}
	<-p.Done()
	s.mu.Lock()
	for id, pc := range s.pending {
		if pc.gen == gen {
			pc.ch <- controlResult{err: errProcessEnded}
			delete(s.pending, id)
		}
	}
	s.mu.Unlock()
	<-s.startDone
	s.mu.Lock()
	mine := s.gen == gen && s.started
	if mine {
		s.gen++
	}
	s.mu.Unlock()
	if !mine {
		return
	}
	why := "claude exited: " + p.Status()
	why += s.stderr.Quote()
	s.log.Warn("claude ended on its own", "status", p.Status())
	go s.Lost(errors.New(why)) // Lost calls Stop, which waits for this reader
}

// stop ends claude: the Driver's Stop.
func (s *session) stop(ctx context.Context, mode sdk.CloseMode) sdk.ExitInfo {
	s.mu.Lock()
	s.stopping = true
	p := s.proc
	s.gen++ // whatever ends now ends because of Stop
	s.mu.Unlock()
	s.stopNow()
	var info sdk.ExitInfo
	if p != nil {
		info = p.Close(ctx, mode)
	}
	s.bg.Wait()
	// A restart may have replaced p meanwhile; it saw stopping and killed
	// what it started.
	s.stderr.Close()
	return info
}

// write gives a line to the current claude.
func (s *session) write(b []byte) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return errors.New("claude is not running")
	}
	_, err := p.Write(b)
	return err
}

// compactJSON renders raw JSON on one line, bounded, for descriptions.
func compactJSON(raw json.RawMessage, max int) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
