package suite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/internal/procscan"
)

// MarkerEnv is the variable the suite sets on every plugin it starts, with
// a fresh value per check, and in every session's Env. Children inherit
// it, so a scan of /proc finds every process the plugin started, wherever
// it was reparented: that is how the process checks prove that nothing is
// left. (A plugin that gave its CLI neither its own environment nor the
// session's would hide it; child_environment finds such a CLI among the
// plugin's descendants and fails.)
const MarkerEnv = "TTHOST_CONFORMANCE_RUN"

const (
	// stopGrace is how long Plugin.Stop lets a plugin close its sessions.
	stopGrace = 10 * time.Second
	// logTailBytes is how much of the plugin's log a failed result keeps.
	logTailBytes = 4 << 10
	// longHold is how long a long turn must keep running after it was seen
	// running before a check acts on it (see startRunning).
	longHold = 500 * time.Millisecond
)

// failNow ends a check; the runner recovers it (like testing's FailNow,
// it must be raised on the check's own goroutine).
type failNow struct{}

// run is one check's harness: its plugin, sessions, scratch directory and
// findings. Everything it starts is stopped by teardown.
type run struct {
	ctx    context.Context
	target Target
	desc   sdk.Description
	cli    sdk.CLI
	opts   Options
	marker string // MarkerEnv=<hex>
	dir    string // scratch directory, removed by teardown
	log    *logTail

	plugin   *client.Plugin
	plugins  []*client.Plugin
	served   map[*client.Plugin]InProcessServer // in process: how to stop each
	streams  []*stream
	sessions int
	turns    int

	mu          sync.Mutex
	transcripts map[string]string // session id NUL turn id -> transcript path
	errs        []string
	notes       []string
	unproven    []string
	nonces      int
}

func newRun(ctx context.Context, target Target, desc sdk.Description, cli sdk.CLI, opts Options) (*run, error) {
	dir, err := os.MkdirTemp("", "tthost-conformance-")
	if err != nil {
		return nil, err
	}
	return &run{
		ctx:         ctx,
		target:      target,
		desc:        desc,
		cli:         cli,
		opts:        opts,
		marker:      MarkerEnv + "=" + randomHex(8),
		dir:         dir,
		log:         newLogTail(logTailBytes),
		served:      map[*client.Plugin]InProcessServer{},
		transcripts: map[string]string{},
	}, nil
}

// fatalf records a failure and ends the check.
func (r *run) fatalf(rule, format string, args ...any) {
	r.errorf(rule, format, args...)
	panic(failNow{})
}

// errorf records a failure and lets the check go on.
func (r *run) errorf(rule, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if rule != "" {
		msg += " (rule: " + rule + ")"
	}
	r.mu.Lock()
	r.errs = append(r.errs, msg)
	r.mu.Unlock()
}

// notef records a remark that does not fail the check.
func (r *run) notef(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// unprovenf records what the check could not prove: without a failure,
// the check's result is StatusUnproven, never a pass.
func (r *run) unprovenf(format string, args ...any) {
	r.mu.Lock()
	r.unproven = append(r.unproven, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// inProcess reports whether the plugin is a Backend value served in this
// process (no plugin process of its own).
func (r *run) inProcess() bool { return r.target.inProcess() }

// stepCtx bounds one step (a launch, a turn, a close).
func (r *run) stepCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.opts.Timeout)
}

// nonce returns a fresh word for prompts, so that outputs can be told
// apart.
func (r *run) nonce() string {
	r.mu.Lock()
	r.nonces++
	n := r.nonces
	r.mu.Unlock()
	return fmt.Sprintf("n%d%s", n, randomHex(4))
}

// pluginEnv is the plugin process's environment on top of the host's.
func (r *run) pluginEnv(extra ...string) []string {
	env := append([]string{r.marker}, r.target.PluginEnv...)
	return append(env, extra...)
}

func (r *run) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "conformance",
		Output: r.log,
		Level:  hclog.Info,
	})
}

// launch starts the plugin (r.plugin is the latest) or ends the check.
func (r *run) launch(extraEnv ...string) *client.Plugin {
	p, err := r.tryLaunch(extraEnv...)
	if err != nil {
		r.fatalf("", "the plugin did not start: %v", err)
	}
	return p
}

func (r *run) tryLaunch(extraEnv ...string) (*client.Plugin, error) {
	ctx, cancel := r.stepCtx()
	defer cancel()
	cfg := client.Config{
		Path:        r.target.Path,
		Checksum:    r.target.Checksum,
		Env:         r.pluginEnv(extraEnv...),
		Logger:      r.logger(),
		HostVersion: "conformance",
	}
	var p *client.Plugin
	if r.inProcess() {
		if ServeInProcess == nil {
			return nil, errors.New("a Target with a Backend is served in process by package conformance (sdk/conformance); import it, or give the plugin's Path")
		}
		served, err := ServeInProcess(ctx, r.target.Backend, cfg)
		if err != nil {
			return nil, err
		}
		p = served.Plugin()
		r.mu.Lock()
		r.served[p] = served
		r.mu.Unlock()
	} else {
		var err error
		if p, err = client.Launch(ctx, cfg); err != nil {
			return nil, err
		}
	}
	r.plugin = p
	r.plugins = append(r.plugins, p)
	return p, nil
}

// stopPlugin stops a plugin as the host does: a launched one with
// Plugin.Stop, an in-process one by stopping its serving too.
func (r *run) stopPlugin(p *client.Plugin) error {
	r.mu.Lock()
	served := r.served[p]
	r.mu.Unlock()
	if served != nil {
		return served.Stop(stopGrace)
	}
	return p.Stop(stopGrace)
}

// sessionConfig is the SessionConfig every check starts from.
func (r *run) sessionConfig() sdk.SessionConfig {
	r.mu.Lock()
	r.sessions++
	n := r.sessions
	r.mu.Unlock()
	workdir := r.target.Workdir
	if workdir == "" {
		workdir = filepath.Join(r.dir, "work")
		_ = os.MkdirAll(workdir, 0o755)
	}
	env := map[string]string{}
	for k, v := range r.target.Env {
		env[k] = v
	}
	// The run's marker reaches the CLI through the session's Env as well
	// as through the plugin's environment (the only way in process).
	name, value, _ := strings.Cut(r.marker, "=")
	env[name] = value
	opts := map[string]string{}
	for k, v := range r.target.Options {
		opts[k] = v
	}
	return sdk.SessionConfig{
		CLIName:   r.target.CLI,
		Command:   r.target.Command,
		Workdir:   workdir,
		Env:       env,
		Options:   opts,
		AgentID:   fmt.Sprintf("conformance-agent-%d", n),
		AgentName: fmt.Sprintf("conformance-%d", n),
		LogDir:    filepath.Join(r.dir, "logs"),
	}
}

// open opens a session on the latest plugin and follows its events.
func (r *run) open(cfg sdk.SessionConfig) *stream {
	s, err := r.tryOpen(cfg)
	if err != nil {
		r.fatalf("", "OpenSession(cli %q) failed: %v", cfg.CLIName, err)
	}
	return s
}

func (r *run) tryOpen(cfg sdk.SessionConfig) (*stream, error) {
	ctx, cancel := r.stepCtx()
	defer cancel()
	sess, err := r.plugin.OpenSession(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := follow(fmt.Sprintf("session %d (%s)", len(r.streams)+1, sess.ID()), sess)
	r.streams = append(r.streams, s)
	return s, nil
}

// openReady opens a session and waits for its SessionReady.
func (r *run) openReady() (*stream, *sdk.SessionReady) {
	s := r.open(r.sessionConfig())
	return s, r.waitReady(s)
}

func (r *run) waitReady(s *stream) *sdk.SessionReady {
	evs := r.wait(s, "SessionReady", hasKind(sdk.EventSessionReady, ""))
	return evs[find(evs, sdk.EventSessionReady, "")].Ready
}

// wait waits for cond on s within one step, or ends the check.
func (r *run) wait(s *stream, what string, cond func([]sdk.Event) bool) []sdk.Event {
	ctx, cancel := r.stepCtx()
	defer cancel()
	evs, err := s.wait(ctx, what, cond)
	if err != nil {
		r.fatalf("", "%s: %v", s.name, err)
	}
	return evs
}

// transcript is the path of a turn's transcript file.
func (r *run) transcript() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.turns++
	return filepath.Join(r.dir, "transcripts", "turn-"+strconv.Itoa(r.turns)+".log")
}

// send delivers input or ends the check.
func (r *run) send(s *stream, in sdk.Input) sdk.Delivery {
	ctx, cancel := r.stepCtx()
	defer cancel()
	d, err := s.sess.Send(ctx, in)
	if err != nil {
		r.fatalf(ruleInBand, "%s: Send(%s) failed: %v", s.name, in.Kind, err)
	}
	return d
}

// startTurn sends a turn and returns its id, or ends the check.
func (r *run) startTurn(s *stream, kind sdk.InputKind, text string) string {
	path := r.transcript()
	d := r.send(s, sdk.Input{Kind: kind, Text: text, TranscriptPath: path})
	if d.Kind != sdk.DeliveryStarted || d.TurnID == "" {
		r.fatalf(ruleTurnID, "%s: Send(%s) on an idle session answered delivery %s with turn id %q; want started with a turn id",
			s.name, kind, d.Kind, d.TurnID)
	}
	r.mu.Lock()
	r.transcripts[s.id+"\x00"+d.TurnID] = path
	r.mu.Unlock()
	return d.TurnID
}

// transcriptOf is the transcript path a turn of s was started with.
func (r *run) transcriptOf(s *stream, turnID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.transcripts[s.id+"\x00"+turnID]
}

// finishTurn waits for a turn's TurnCompleted and returns it with the
// events so far.
func (r *run) finishTurn(s *stream, turnID string) (*sdk.TurnCompleted, []sdk.Event) {
	evs := r.wait(s, fmt.Sprintf("TurnCompleted of turn %q", turnID), hasKind(sdk.EventTurnCompleted, turnID))
	return evs[find(evs, sdk.EventTurnCompleted, turnID)].Completed, evs
}

// runTurn runs an ordinary prompt to its end and requires it completed.
func (r *run) runTurn(s *stream, text string) (turnID string, evs []sdk.Event) {
	id := r.startTurn(s, sdk.InputTurn, text)
	c, evs := r.finishTurn(s, id)
	if c.Status != sdk.StatusCompleted {
		r.fatalf("", "%s: the ordinary prompt %q ended %s (error %q); want completed. Is the CLI command right? The turn's events:\n%s",
			s.name, clip(text, 80), c.Status, c.Error, dumpEvents(ofTurn(evs, id), 12))
	}
	return id, evs
}

// startLong starts a turn with the long prompt and returns once it is
// seen running (see startRunning).
func (r *run) startLong(s *stream) string {
	id, _ := r.startRunning(s, r.target.Prompts.Long, ruleLongPrompt)
	return id
}

// running is how a long turn was seen running.
type running struct {
	// how says what showed it, for messages.
	how string
	// quiet: nothing showed; the turn had only not ended after quietWait.
	quiet bool
}

// quietWait is how long a long turn that shows neither output nor a new
// process must go on before a check acts on it anyway.
const quietWait = 5 * time.Second

// startRunning starts a turn with prompt, a long one, waits until it is
// seen running (awaitRunning) and requires it to go on for longHold: a
// turn that ends on its own that soon would make an ignored cancel look
// like one that works, a lost steer like one that arrived, and a turn
// accepted while another "runs" like a rule broken. It returns the turn
// id and what showed it running; a failure names rule, the one the check
// acting on the turn proves.
func (r *run) startRunning(s *stream, prompt, rule string) (string, running) {
	before := r.alive()
	id := r.startTurn(s, sdk.InputTurn, prompt)
	r.wait(s, fmt.Sprintf("TurnStarted of the long turn %q", id), hasKind(sdk.EventTurnStarted, id))
	seen := r.awaitRunning(s, id, prompt, before, rule)
	if c, ended := r.holdRunning(s, id); ended {
		r.fatalf(rule, "%s: the turn %q of the long prompt %q ended %s on its own within %v of being seen running (%s): "+
			"the check needs it running until it acts on it; is it a prompt the CLI works on until it is cancelled?",
			s.name, id, clip(prompt, 60), c.Status, longHold, seen.how)
	}
	return id, seen
}

// awaitRunning waits until a long turn is seen running: its first output
// (an AssistantDelta of the turn), or a process of the plugin that was not
// alive before the turn (before), the CLI a one-shot backend starts for
// it. TurnStarted alone proves nothing: a CLI that does not understand the
// long prompt answers at once. A turn that shows neither but has not ended
// after quietWait is taken as running, quietly (the caller decides what
// that leaves unproven). It ends the check when the turn ends first. The
// output is watched as events; no event announces a new process, so that
// part is a poll.
func (r *run) awaitRunning(s *stream, turnID, prompt string, before []int, rule string) running {
	ctx, cancel := context.WithTimeout(r.ctx, quietWait)
	defer cancel()
	backoff := 2 * time.Millisecond
	for {
		evs, ended, changed := s.state()
		if i := find(evs, sdk.EventTurnCompleted, turnID); i >= 0 {
			r.fatalf(rule, "%s: the turn of the long prompt %q ended %s on its own before the suite could see it run: is it a prompt the CLI works on until it is cancelled? The turn's events:\n%s",
				s.name, clip(prompt, 60), evs[i].Completed.Status, dumpEvents(ofTurn(evs, turnID), 12))
		}
		if i := find(evs, sdk.EventAssistantDelta, turnID); i >= 0 {
			return running{how: fmt.Sprintf("its output %q", clip(evs[i].Text, 40))}
		}
		if pids := newPids(r.alive(), before); len(pids) > 0 {
			return running{how: "a new process, " + describePids(pids)}
		}
		if ended {
			r.fatalf(rule, "%s: the session's events ended while the long turn %q had shown neither output nor a process", s.name, turnID)
		}
		t := time.NewTimer(backoff)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if err := r.ctx.Err(); err != nil {
				r.fatalf("", "%v", err)
			}
			return running{quiet: true, how: fmt.Sprintf("no output and no new process, but not ended after %v", quietWait)}
		}
		t.Stop()
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// holdRunning waits longHold for a turn seen running to end: it returns
// how the turn ended if it did.
func (r *run) holdRunning(s *stream, turnID string) (*sdk.TurnCompleted, bool) {
	return r.holdFor(s, turnID, longHold)
}

// holdFor waits d for a running turn to end: it returns how the turn ended
// if it did.
func (r *run) holdFor(s *stream, turnID string, d time.Duration) (*sdk.TurnCompleted, bool) {
	ctx, cancel := context.WithTimeout(r.ctx, d)
	defer cancel()
	evs, err := s.wait(ctx, "", hasKind(sdk.EventTurnCompleted, turnID))
	if err != nil {
		if r.ctx.Err() != nil {
			r.fatalf("", "%v", r.ctx.Err())
		}
		return nil, false
	}
	return evs[find(evs, sdk.EventTurnCompleted, turnID)].Completed, true
}

func newPids(now, before []int) []int {
	var out []int
	for _, pid := range now {
		if !slices.Contains(before, pid) {
			out = append(out, pid)
		}
	}
	return out
}

// close closes a session within one step or ends the check.
func (r *run) close(s *stream, mode sdk.CloseMode) time.Duration {
	ctx, cancel := r.stepCtx()
	defer cancel()
	start := time.Now()
	if err := s.sess.Close(ctx, mode); err != nil {
		r.fatalf("", "%s: CloseSession(%s) failed: %v", s.name, modeName(mode), err)
	}
	return time.Since(start)
}

// checkEcho compares a turn's output with its prompt as the target's echo
// mode says.
func (r *run) checkEcho(s *stream, evs []sdk.Event, turnID, prompt string) {
	out := sdk.TurnText(evs, turnID)
	want := prompt
	switch r.target.Prompts.Echo {
	case EchoNone:
		return
	case EchoFirstLine:
		want, _, _ = strings.Cut(prompt, "\n")
	}
	if !strings.Contains(out, want) {
		r.errorf(ruleIntact, "%s: the output of turn %q does not contain %s (echo mode %s): %s",
			s.name, turnID, describeText(want), r.target.Prompts.Echo, mismatch(out, want))
	}
}

// alive lists the processes of this check's plugins other than the
// plugin processes themselves: those carrying the run's marker (from the
// plugin's environment or the session's) and, for a plugin binary, its
// descendants, found by parent even if they carry neither.
func (r *run) alive() []int {
	var out []int
	for _, pid := range procscan.FindByEnv(r.marker) {
		if !r.isPlugin(pid) {
			out = append(out, pid)
		}
	}
	if r.inProcess() {
		return out
	}
	for _, p := range r.plugins {
		for _, pid := range descendants(p.Pid()) {
			if !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (r *run) isPlugin(pid int) bool {
	for _, p := range r.plugins {
		if p.Pid() == pid {
			return true
		}
	}
	return false
}

// teardown closes every session, stops every plugin, waits for the event
// readers, removes the scratch directory, and kills whatever still carries
// the check's marker (reporting it: nothing may outlive Plugin.Stop).
func (r *run) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	r.mu.Lock()
	streams := slices.Clone(r.streams)
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() { _ = s.sess.Close(ctx, sdk.CloseImmediate) })
	}
	wg.Wait()
	for _, p := range r.plugins {
		if err := r.stopPlugin(p); err != nil {
			r.errorf("", "stopping the plugin: %v", err)
		}
	}
	for _, s := range streams {
		<-s.done // the client closes every event channel once its plugin is gone
		for _, p := range s.violations() {
			r.errorf("", "%s", p)
		}
	}
	if left := killTagged(r.marker); len(left) > 0 {
		r.errorf("", "processes carrying the plugin's environment were still alive after Plugin.Stop returned (killed now): %s", left)
	}
	_ = os.RemoveAll(r.dir)
}

// result turns the findings into a Result.
func (r *run) result(name string, took time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Name: name, Status: StatusPass, Duration: took}
	switch {
	case len(r.errs) > 0:
		res.Status = StatusFail
		res.Message = strings.Join(dedupe(r.errs), "\n")
		res.Log = r.log.String()
	case len(r.unproven) > 0:
		res.Status = StatusUnproven
		res.Message = strings.Join(append(dedupe(r.unproven), r.notes...), "\n")
	default:
		res.Message = strings.Join(r.notes, "\n")
	}
	return res
}

func dedupe(lines []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

func modeName(m sdk.CloseMode) string {
	if m == sdk.CloseGraceful {
		return "graceful"
	}
	return "immediate"
}

// describeText names a text in a message without printing a megabyte.
func describeText(s string) string {
	if len(s) <= 120 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("the %d-byte text starting %q", len(s), clip(s, 60))
}

// mismatch explains how out differs from want (which it should contain).
func mismatch(out, want string) string {
	if out == "" {
		return "the turn produced no output (no AssistantDelta)"
	}
	head := want[:min(len(want), 24)]
	at := strings.Index(out, head)
	if at < 0 {
		return fmt.Sprintf("got %d bytes of output, starting %q", len(out), clip(out, 80))
	}
	// Where the output stops following the prompt: usually where the text
	// was cut or mangled.
	got := out[at:]
	n := 0
	for n < len(want) && n < len(got) && got[n] == want[n] {
		n++
	}
	return fmt.Sprintf("got %d bytes of output; from byte %d it follows the prompt for %d bytes, then want %q but got %q",
		len(out), at, n, clip(want[n:], 40), clip(got[n:], 40))
}

// logTail keeps the end of what is written to it.
type logTail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newLogTail(max int) *logTail { return &logTail{max: max} }

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - l.max; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.buf)
	if len(l.buf) >= l.max {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:] // drop the partial first line
		}
	}
	return strings.TrimSpace(s)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// InProcessServer is a Backend value served in this process (see
// ServeInProcess).
type InProcessServer interface {
	Plugin() *client.Plugin
	Stop(grace time.Duration) error
}

// ServeInProcess serves a Target's Backend value over real gRPC in this
// process. Package conformance sets it (to sdk/sdktest/inprocess.Serve);
// the engine does not import the plugin-side server itself, so a binary
// that only proves plugin binaries (tthost) links none of it.
var ServeInProcess func(ctx context.Context, b sdk.Backend, cfg client.Config) (InProcessServer, error)
