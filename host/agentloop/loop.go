// Package agentloop is the worker: it turns one agent's inbox into turns of
// the agent's coding CLI, through a backend plugin session.
//
// The loop keeps Tinytown's semantics (see docs/compatibility.md): stop
// and pause checks, idle timeout → draining → stopped, message
// classification, informational batching, confirmations auto-dismissed,
// backlog snapshot and the synthetic backlog query, round counting,
// re-queue on CLI failure, task tracking, heartbeats, final state stopped.
// It differs where Tinytown loses work or wastes time:
//
//   - Messages move atomically from the inbox into the agent's in-flight
//     list and leave it only when their turn has an outcome; a restarted
//     worker delivers what it finds in flight again (town.Worker.Intake).
//   - Every move is fenced by the worker lease (moves.go, lease.go): a
//     worker another one took over is refused by Redis, cancels its turn and
//     exits without touching the agent's messages, and the new worker waits
//     until the old one's turn must have ended before it re-delivers.
//   - A turn takes a bounded batch (max_turn_messages, max_turn_bytes); a
//     message too large for any turn is dead-lettered, one addressed to
//     another agent is re-routed to it (batch.go).
//   - Redis may go away: the worker's client rides the outage out
//     (town.OutageHook) and the loop says so and records it (outage.go).
//   - A waiting agent sleeps on keyspace notifications (Options.Wakeups) or
//     its wake signal (BLPOP), not a fixed tick, so a message, stop or
//     urgent note reaches the CLI within milliseconds, whoever wrote it; a
//     safety poll remains as a backstop.
//   - Stop and pause reach a running turn: it is cancelled within a second
//     and its messages are re-queued at the front, in order.
//   - A failing CLI backs off instead of replaying its work every second,
//     and a failed turn is not counted as completed work.
//   - An idle agent with role-matching backlog is offered the backlog once
//     per new matching task instead of idling to its timeout.
//   - Every step is visible in the agent's activity log and event stream.
package agentloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/host/backend"
	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// Backends is what the loop needs from the backend manager.
type Backends interface {
	Select(ctx context.Context, w backend.Want) (backend.Choice, error)
	OpenSession(ctx context.Context, ch backend.Choice, cfg sdk.SessionConfig) (Session, error)
}

// Session is one backend session (sdk/client.Session satisfies it).
type Session interface {
	// ID is the plugin's id of the session.
	ID() string
	Send(ctx context.Context, in sdk.Input) (sdk.Delivery, error)
	Events() <-chan sdk.Event
	Close(ctx context.Context, mode sdk.CloseMode) error
}

// Resumer is implemented by Backends that reattached to the plugins a
// previous worker process left running (a host restart or upgrade).
type Resumer interface {
	// ResumeSession follows the agent's surviving session sessionID from
	// event afterSeq+1 on. ok is false when this process holds no such
	// session (it was another process's, or its plugin is gone): the
	// session's turn cannot be adopted and its messages are delivered
	// again.
	ResumeSession(ctx context.Context, agentID, sessionID string, afterSeq uint64) (s Session, ok bool, err error)
}

// Recoverer is implemented by Backends that can reattach to the plugins a
// previous process left running. The loop calls Recover once it holds the
// agent's lease and before it chooses a backend (a plugin launched before
// would overwrite what the previous process left to reattach).
type Recoverer interface {
	Recover(ctx context.Context) error
}

// Wakeups tells the loop about writes to its agent's keys that carry no
// wake signal (Tinytown's `tt send`, `tt stop`, `tt send --urgent`): a
// keyspace-notification watch (host/notify). C fires after such a write
// (and spuriously at times); Active says whether notifications reach the
// loop now (the server may refuse them, or forget them after a restart);
// String says which path the town is on, for the log.
type Wakeups interface {
	C() <-chan struct{}
	Active() bool
	String() string
}

// Options configures one agent's loop.
type Options struct {
	// TownDir is the town root (the CLI's working directory).
	TownDir string
	Config  *config.Config
	Store   *town.Store
	// Backends opens sessions.
	Backends Backends
	// Name, ID and MaxRounds are agent-loop's three arguments.
	Name      string
	ID        string
	MaxRounds int
	// Out receives the human log (the agent's .tt/logs/<name>.log when
	// spawned in the background).
	Out io.Writer
	// Logger receives structured logs.
	Logger hclog.Logger
	// ToolDir is put first on the CLI's PATH so the prompt's `tthost`
	// commands resolve to this tthost (default: the executable's directory).
	ToolDir string
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// Wakeups, when set, lets the loop sleep without a blocked Redis
	// connection and react to writers that send no wake signal within
	// milliseconds. Without it (or while it is not Active) the loop waits
	// on its wake list (BLPOP), polls the stop flag and the urgent list
	// every turn_poll_ms during a turn, and finds other writes at its
	// safety poll.
	Wakeups Wakeups
	// Claim, when set, is the lease a host (tthost serve) took for this
	// loop: the loop serves under it instead of taking its own.
	Claim *Claim
	// Hosted says a serve host runs the loop among many others:
	//   - while idle with Active Wakeups the loop issues no Redis command
	//     of its own, not even a safety poll (the notifier fires every
	//     watch after a reconnect, the backstop the poll is otherwise);
	//   - it never holds a pooled connection blocked in BLPOP on its wake
	//     list; without active Wakeups it polls on its timers;
	//   - the host writes its heartbeat while it waits (all its agents in
	//     one command); the loop writes its own only during a turn.
	Hosted bool
	// Observer, when set, is told of turns, steers, queue depths and Redis
	// errors (a host's metrics).
	Observer Observer
}

// Claim is a worker lease taken by the host that runs the loop, and how
// long to wait before delivering again what the previous holder left in
// flight (so no two runs of a message overlap).
type Claim struct {
	Lease    *town.Lease
	Fence    time.Duration
	FenceWhy string
}

// Loop is one agent's worker.
type Loop struct {
	opts  Options
	store *town.Store
	cfg   *config.Config
	log   hclog.Logger

	id, name        string
	registered      bool // the agent hash exists; without it no state is written
	cliName, cliCmd string
	choice          backend.Choice
	session         *live        // the open backend session, nil before the first turn
	cursor          uint64       // the last event of the session handled (see emit)
	cursorWritten   uint64       // the last one the session record holds
	running         *pendingTurn // the turn in progress
	next            *pendingTurn // a turn an urgent message started while running ended

	round       int // turns attempted (completed or failed): counts toward MaxRounds
	completed   int // turns completed
	failures    int // consecutive failed turns, for the backoff
	retries     int // attempts of the current round number (for transcript names)
	state       town.AgentState
	current     string // the agent's current_task, as far as this loop knows
	lastActive  time.Time
	lastBeat    time.Time
	agent       *town.Agent // the record read at start-up (nil when missing)
	lease       *town.Lease
	worker      *town.Worker       // the lease's fenced message moves
	leaseLost   atomic.Bool        // another worker took the agent over
	detaching   atomic.Bool        // the process hands its sessions to a successor (Detach)
	outages     chan time.Duration // Redis outages to record (RedisUp)
	offered     map[string]bool    // backlog tasks already offered to the agent
	backlogLen  int64              // backlog length seen at the last snapshot
	backlogSeen int64              // backlog length reported by the last intake

	// beforeStateWrite, when set (tests), runs just before setState's
	// conditional write: where a concurrent pause or stop would land.
	beforeStateWrite func(to town.AgentState)
}

// ErrStopped is returned by Run when the loop ended because of a stop
// request; callers treat it as a clean exit.
var ErrStopped = errors.New("stopped by request")

// New prepares a loop; Run runs it.
func New(opts Options) (*Loop, error) {
	if opts.MaxRounds < 0 {
		return nil, fmt.Errorf("max rounds must be 0 or more, got %d", opts.MaxRounds)
	}
	id, err := town.ParseID(opts.ID)
	if err != nil {
		return nil, fmt.Errorf("invalid agent ID %q: %w", opts.ID, err)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.ToolDir == "" {
		if exe, err := os.Executable(); err == nil {
			opts.ToolDir = filepath.Dir(exe)
		}
	}
	return &Loop{
		opts: opts, store: opts.Store, cfg: opts.Config, log: opts.Logger.Named("agentloop"),
		id: id, name: opts.Name, offered: map[string]bool{}, outages: make(chan time.Duration, 1),
	}, nil
}

func (l *Loop) say(format string, args ...any) {
	fmt.Fprintf(l.opts.Out, "%s %s\n", l.opts.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Run serves the agent until a stop request, the idle timeout, the round
// limit, ctx's cancellation (SIGTERM), or an error. Whatever ends it, the
// messages it holds in flight are re-queued and the agent is left in state
// stopped.
func (l *Loop) Run(ctx context.Context) (err error) {
	if err := l.claim(ctx); err != nil {
		return err
	}
	defer func() {
		// Finishing must happen even when ctx is cancelled (SIGTERM).
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		l.finish(fctx, err)
	}()
	if err := l.start(ctx); err != nil {
		return err
	}
	err = l.serve(ctx)
	if l.leaseLost.Load() {
		return fmt.Errorf("agent %s (%s): %w; this worker stopped", l.name, l.id, ErrLeaseLost)
	}
	if errors.Is(err, ErrStopped) || (err != nil && ctx.Err() != nil) {
		return nil
	}
	return err
}

// claim reads the agent and takes its worker lease. Nothing is written
// before the lease is ours: a second worker for the same agent leaves the
// first one's state alone.
func (l *Loop) claim(ctx context.Context) error {
	agent, err := l.store.GetAgent(ctx, l.id)
	switch {
	case err == nil:
		l.registered = true
		l.agent = agent
		l.state = agent.State
		l.current = agent.CurrentTask
	case errors.Is(err, town.ErrAgentNotFound):
		l.say("⚠️ agent %s has no record in Redis: serving it anyway, without state writes", l.id)
	default:
		return fmt.Errorf("read agent %s: %w", l.id, err)
	}
	// The idle clock starts with the worker: an agent restarted after a
	// long pause must not drain at its first idle poll.
	l.lastActive = l.opts.Now()
	if c := l.opts.Claim; c != nil {
		l.lease = c.Lease
		l.worker = c.Lease.Worker()
		return nil
	}
	return l.acquireLease(ctx)
}

// start reads the agent, resolves its CLI and backend, and collects what a
// previous run left in flight.
func (l *Loop) start(ctx context.Context) error {
	agent := l.agent
	var err error
	if r, ok := l.opts.Backends.(Recoverer); ok {
		if err := r.Recover(ctx); err != nil {
			return fmt.Errorf("reattach to the previous worker's plugins: %w", err)
		}
	}
	var prev *town.Runtime
	if l.registered {
		if prev, err = l.store.Runtime(ctx, l.id); err != nil {
			l.log.Warn("read the previous runtime record", "error", err)
		}
	}
	ref := l.cfg.DefaultCLI
	if agent != nil && agent.CLI != "" {
		ref = agent.CLI
	}
	l.cliName = l.cfg.ResolveCLIName(ref)
	l.cliCmd = l.cfg.ResolveCLICommand(ref)

	l.say("🔄 Agent '%s' starting loop (max %d rounds)", l.name, l.opts.MaxRounds)
	l.say("   CLI: %s (%s)", l.cliName, l.cliCmd)
	l.say("   Idle timeout: %ds", l.cfg.Agent.IdleTimeoutSecs)
	if w := l.opts.Wakeups; w != nil {
		l.say("   Notifications: %s", w)
	}

	l.choice, err = l.opts.Backends.Select(ctx, backend.Want{
		CLI: l.cliName, Persistent: l.cfg.Agent.Persistent, Backend: l.cfg.AgentCLIs[l.cliName].Backend,
	})
	if err != nil {
		l.runtimeError(ctx, 0, "backend_unavailable", fmt.Sprintf("no backend can serve %s: %v", l.cliName, err))
		return fmt.Errorf("choose a backend for CLI %q: %w", l.cliName, err)
	}
	l.say("   Runtime: %s backend: %s", l.choice.Backend, l.choice.Reason)
	l.activity(ctx, fmt.Sprintf("Runtime: %s backend (%s)", l.choice.Backend, l.choice.Reason))
	l.emit(ctx, town.EventAgentStateChanged, "Runtime: "+l.choice.Backend+" backend: "+l.choice.Reason, detail{
		Kind: "backend_selected", Backend: l.choice.Backend, Fallback: l.choice.Fallback, Persistent: l.choice.Persistent,
	})
	if l.registered {
		if err := l.store.SetRuntime(ctx, l.id, town.Runtime{
			Backend: l.choice.Backend, Persistent: l.choice.Persistent, Fallback: l.choice.Fallback,
			Reason: l.choice.Reason, Worker: l.workerName(), // the lease holder: this worker
		}); err != nil {
			l.log.Warn("record the runtime", "error", err)
		}
	}
	for _, w := range l.choice.Warnings { // e.g. a corrupt plugins.lock.json: the agent serves on, the town should know
		l.say("⚠️ %s", w)
		l.emit(ctx, town.EventAgentRuntimeError, w, detail{Kind: "plugin_dir_unusable"})
	}

	// A turn a previous worker process left running in a plugin this
	// process reattached to is followed to its end, not delivered again.
	if adopted, err := l.adopt(ctx, prev); err != nil || adopted {
		return err
	}

	// What a previous worker left in flight goes back to the front of its
	// queues, in order: the bounded intake then delivers it first, a turn's
	// worth at a time (a previous worker may have held more than one turn
	// may carry).
	left, err := l.store.InFlight(ctx, l.id)
	if err != nil {
		return fmt.Errorf("read in-flight messages: %w", err)
	}
	if n := len(left); n > 0 {
		l.say("↩️ %d message(s) were in flight when the previous worker stopped: delivering them again", n)
		l.activity(ctx, fmt.Sprintf("↩️ Re-delivering %d in-flight message(s) from an interrupted run", n))
		if err := l.awaitFence(ctx, n); err != nil {
			return err
		}
		if _, err := l.requeue(ctx, left...); err != nil {
			return fmt.Errorf("re-queue in-flight messages: %w", err)
		}
	}
	return nil
}

// serve is the main loop.
func (l *Loop) serve(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.leaseLost.Load() {
			return ErrLeaseLost
		}
		l.recordOutages(ctx)
		if l.running != nil {
			if err := l.finishTurn(ctx); err != nil {
				return err
			}
			continue
		}
		if l.round >= l.opts.MaxRounds {
			l.say("📍 Reached the round limit (%d)", l.opts.MaxRounds)
			return nil
		}
		res, err := l.intake(ctx, town.IntakeOptions{})
		if err != nil {
			if l.leaseLost.Load() {
				return ErrLeaseLost
			}
			return fmt.Errorf("intake: %w", err)
		}
		if res.StopRequested {
			return l.stopRequested(ctx)
		}
		was := l.state
		if !res.Quick {
			l.state = res.State
		}
		l.backlogSeen = res.BacklogLen
		if res.State == town.StatePaused {
			if err := l.paused(ctx, was); err != nil {
				return err
			}
			continue
		}
		b := l.classify(ctx, res.Moved)
		if b.empty() && len(res.Moved) > 0 && res.UrgentLeft+res.InboxLeft > 0 {
			// Everything taken was set aside or re-routed and the bound
			// left more waiting: take it now. The intake consumed the
			// wake token, so waiting would leave it to the safety poll.
			continue
		}
		if b.empty() {
			exit, err := l.idle(ctx, res.BacklogLen)
			if err != nil || exit {
				return err
			}
			continue
		}
		if !b.hasActionable() {
			q, total := l.backlogOffer(ctx, false)
			if q == nil {
				l.autoHandled(ctx, b, total)
				continue
			}
			b.actionable = append(b.actionable, item{msg: q})
		}
		if err := l.turn(ctx, b); err != nil {
			return err
		}
	}
}

// workerName names this worker for status: "hostname:pid", and the serve
// host's id when a host runs the loop.
func (l *Loop) workerName() string {
	o := l.lease.Owner
	if o.HostID != "" {
		return fmt.Sprintf("host %s (%s:%d)", o.HostID, o.Host, o.PID)
	}
	return fmt.Sprintf("%s:%d", o.Host, o.PID)
}

// stopRequested ends the loop on the stop key (tthost stop / tt kill).
func (l *Loop) stopRequested(ctx context.Context) error {
	l.say("🛑 Stop requested, exiting")
	l.activity(ctx, fmt.Sprintf("Round %d: 🛑 stopped by request", l.round+1))
	if err := l.store.ClearStop(ctx, l.id); err != nil {
		return err
	}
	return ErrStopped
}

// paused waits while the agent is paused, without taking messages; was is
// the state the loop knew before this intake.
func (l *Loop) paused(ctx context.Context, was town.AgentState) error {
	if was != town.StatePaused {
		l.say("⏸️ Agent is paused; waiting for resume")
	}
	l.heartbeatIfDue(ctx)
	return l.wait(ctx, l.pollInterval())
}

// finish leaves the agent stopped with nothing of ours in flight. A loop
// that lost its lease leaves everything to the worker that took over: it
// closes its session at once and writes nothing but an event.
func (l *Loop) finish(ctx context.Context, runErr error) {
	if l.detaching.Load() {
		l.detached(ctx)
		return
	}
	if l.leaseLost.Load() {
		if !l.leavesSessionOnLoss() {
			l.closeSession(ctx, sdk.CloseImmediate)
		}
		l.emit(ctx, town.EventAgentStopped, fmt.Sprintf("Worker of %s stopped: its lease was taken over", l.name), detail{Kind: "loop_finished", Code: "lease_lost"})
		l.say("🏁 Agent '%s': this worker stopped after losing its lease (%d round(s) completed here)", l.name, l.completed)
		return
	}
	l.closeSession(ctx, sdk.CloseGraceful)
	// Anything still in flight (left by an error exit) goes back to the
	// front of the queues for the next worker.
	if left, err := l.store.InFlight(ctx, l.id); err == nil && len(left) > 0 {
		if _, err := l.requeue(ctx, left...); err != nil {
			l.log.Error("re-queue in-flight messages at exit", "error", err)
		} else {
			l.say("↩️ Re-queued %d in-flight message(s) at exit", len(left))
		}
	}
	if runErr != nil && !errors.Is(runErr, ErrStopped) && ctx.Err() == nil {
		l.runtimeError(ctx, 0, "loop_error", fmt.Sprintf("agent loop ended with an error: %v", runErr))
	}
	if l.registered {
		if _, err := l.store.UpdateAgent(ctx, l.id, town.AgentUpdate{
			State: town.StateStopped, Heartbeat: true, At: l.opts.Now(),
		}); err != nil {
			l.log.Error("write final state", "error", err)
		}
	}
	if l.lease != nil {
		if err := l.lease.Release(ctx); err != nil {
			l.log.Warn("release the worker lease", "error", err)
		}
	}
	l.emit(ctx, town.EventAgentStopped, fmt.Sprintf("Agent %s stopped: %d round(s) completed", l.name, l.completed), detail{Kind: "loop_finished"})
	l.say("🏁 Agent '%s' finished: %d round(s) completed", l.name, l.completed)
}

// notified reports whether keyspace notifications reach the loop now.
func (l *Loop) notified() bool {
	return l.opts.Wakeups != nil && l.opts.Wakeups.Active()
}

// wait sleeps until the agent's wake signal (or, with notifications, any
// write to its queues, stop flag or record), ctx's end, or d.
func (l *Loop) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if l.notified() {
		return sleepUntil(ctx, l.opts.Wakeups.C(), d)
	}
	if l.opts.Hosted {
		return sleepUntil(ctx, nil, d)
	}
	_, err := l.store.WaitWake(ctx, l.id, d)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// sleepUntil waits for a value on c, ctx's end (its error) or d.
func sleepUntil(ctx context.Context, c <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c:
	case <-t.C:
	}
	return nil
}

// pollInterval is the longest a waiting agent sleeps without news: the
// safety poll, or the heartbeat when that is shorter, since the heartbeat
// renews the worker lease (TTL 3 × heartbeat) and must not be missed.
func (l *Loop) pollInterval() time.Duration {
	return min(time.Duration(l.cfg.TTHost.SafetyPollSecs), time.Duration(l.cfg.TTHost.HeartbeatSecs)) * time.Second
}

// turnPoll is how often a running turn re-checks the stop flag, the
// agent's state and (when it can steer) the urgent list for writers that
// send no wake signal.
func (l *Loop) turnPoll() time.Duration {
	return time.Duration(l.cfg.TTHost.TurnPollMillis) * time.Millisecond
}

// heartbeatIfDue writes last_heartbeat at most every heartbeat_secs, and
// touches the agent's log file: `tt recover` trusts its mtime.
func (l *Loop) heartbeatIfDue(ctx context.Context) {
	now := l.opts.Now()
	if now.Sub(l.lastBeat) < time.Duration(l.cfg.TTHost.HeartbeatSecs)*time.Second {
		return
	}
	l.heartbeat(ctx, now)
}

func (l *Loop) heartbeat(ctx context.Context, now time.Time) {
	l.lastBeat = now
	if l.opts.Hosted && l.running == nil {
		return // the host's heartbeat covers a waiting agent (its lease is the host's too)
	}
	if l.lease != nil {
		if err := l.lease.Refresh(ctx); errors.Is(err, town.ErrFenced) {
			l.loseLease(ctx, err)
			return
		} else if err != nil {
			l.log.Error("refresh the worker lease", "error", err)
		}
	}
	if l.registered {
		if _, err := l.store.UpdateAgent(ctx, l.id, town.AgentUpdate{Heartbeat: true, At: now}); err != nil {
			l.log.Warn("heartbeat", "error", err)
		}
	}
	logFile := filepath.Join(l.opts.TownDir, ".tt", "logs", l.name+".log")
	_ = os.Chtimes(logFile, now, now)
}

// setState moves the agent to u.State, writing with it the rest of u
// (heartbeat, last_active_at) by the loop's clock, in one conditional
// write: the state is not written when the agent is paused (tthost or tt
// interrupt) or stopped (tthost stop, tt kill) at that moment, so a pause
// or stop that lands after the loop last read the state is never
// overwritten, whenever it lands. A stopped state the loop itself read
// (left by an earlier worker) is replaced. It reports whether the state
// was written; when it was not, l.state is the state that held it.
// An unregistered agent, or one whose lease was lost, gets no write; the
// loop only tracks the state.
func (l *Loop) setState(ctx context.Context, u town.AgentUpdate) (bool, error) {
	if !l.registered || l.leaseLost.Load() {
		l.state = u.State
		return true, nil
	}
	u.At = l.opts.Now()
	u.UnlessState = []town.AgentState{town.StatePaused}
	if l.state != town.StateStopped {
		u.UnlessState = append(u.UnlessState, town.StateStopped)
	}
	if l.beforeStateWrite != nil {
		l.beforeStateWrite(u.State)
	}
	written, err := l.store.UpdateAgent(ctx, l.id, u)
	if err != nil {
		return false, err
	}
	if written {
		l.state = u.State
		return true, nil
	}
	// Someone paused or stopped the agent meanwhile: learn which (this
	// read decides nothing, the write above did).
	now, err := l.store.AgentState(ctx, l.id)
	if err != nil {
		return false, err
	}
	l.state = now
	icon := "⏸️"
	if now == town.StateStopped {
		icon = "⏹️"
	}
	l.say("%s Agent became %s meanwhile: leaving it %s rather than marking it %s", icon, now, now, u.State)
	return false, nil
}

// becomeIdle marks the agent idle after work, unless a pause or stop
// reached it meanwhile (setState).
func (l *Loop) becomeIdle(ctx context.Context) error {
	now := l.opts.Now()
	l.lastActive = now
	l.lastBeat = now
	_, err := l.setState(ctx, town.AgentUpdate{State: town.StateIdle, Active: true, Heartbeat: true})
	return err
}

// cliEnv is the environment the CLI gets on top of the plugin's.
func (l *Loop) cliEnv() map[string]string {
	env := map[string]string{
		"TINYTOWN_AGENT_ID":   l.id,
		"TINYTOWN_AGENT_NAME": l.name,
	}
	if l.opts.ToolDir != "" {
		env["PATH"] = l.opts.ToolDir + string(os.PathListSeparator) + os.Getenv("PATH")
	}
	return env
}

// transcriptPath names the turn's output log: Tinytown's
// .tt/logs/<name>_round_<n>.log, with a suffix for a re-attempt of the same
// round so an interrupted attempt's output is not overwritten.
func (l *Loop) transcriptPath(display int) string {
	name := fmt.Sprintf("%s_round_%d.log", l.name, display)
	if l.retries > 0 {
		name = fmt.Sprintf("%s_round_%d_%d.log", l.name, display, l.retries+1)
	}
	return filepath.Join(l.opts.TownDir, ".tt", "logs", name)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
