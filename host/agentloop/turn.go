package agentloop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tthost/tthost/host/prompt"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// maxStartFailures ends the loop after this many turns in a row could not
// even start (the backend is broken): the agent stops, its messages are
// re-queued for another worker, instead of retrying forever.
const maxStartFailures = 5

// turnResult is how a turn ended.
type turnResult struct {
	status   sdk.TurnStatus
	exitCode *int
	summary  string
	errText  string
	// cause is set when the loop cancelled the turn.
	cause turnCause
	// lost is set when the backend session ended before the turn did.
	lost string
	// detached is set when the worker handed the turn, still running, to
	// a successor process (Loop.Detach): it has no outcome here.
	detached bool
	// unsent is set for an adopted turn that never reached the CLI.
	unsent bool
	// seq is the session event that ended the turn (its TurnCompleted):
	// the outcome's write settles it, never an earlier write, so a
	// successor that resumes after a crash in between sees the end again.
	seq uint64
}

// turnCause is why the loop cancels a running turn. Its value is written
// as is into the log, the activity log and events ("interrupted (stop)").
type turnCause string

const (
	causeStop      turnCause = "stop"       // the stop flag (tthost stop, tt kill)
	causePause     turnCause = "pause"      // the agent was paused (interrupt)
	causeShutdown  turnCause = "shutdown"   // the worker's context ended (SIGTERM)
	causeLeaseLost turnCause = "lease_lost" // another worker took the agent over
)

// text says why the loop cancels a turn.
func (c turnCause) text() string {
	switch c {
	case causeLeaseLost:
		return "the worker lease was taken over"
	case causeShutdown:
		return "the worker is shutting down"
	}
	return string(c) + " requested during the turn"
}

// pendingTurn is a turn started in the CLI and not yet settled.
type pendingTurn struct {
	id      string
	display int
	batch   *batch
	deltas  *deltaBuffer
	started time.Time
	usage   sdk.Usage // the sum of the turn's usage events
	adopted bool      // taken over from a previous worker process (adopt)
}

// adopt learns the turn's id from the session's events when a worker
// adopted a turn its predecessor was still sending (town.TurnPending): the
// first turn the events name is that turn.
func (pt *pendingTurn) adopt(ev sdk.Event) {
	if pt.id == "" && ev.TurnID != "" {
		pt.id = ev.TurnID
		pt.deltas.turnID = ev.TurnID
	}
}

func (pt *pendingTurn) addUsage(u sdk.Usage) {
	pt.usage.InputTokens += u.InputTokens
	pt.usage.CachedInputTokens += u.CachedInputTokens
	pt.usage.OutputTokens += u.OutputTokens
	pt.usage.ReasoningOutputTokens += u.ReasoningOutputTokens
	pt.usage.TotalTokens += u.TotalTokens
}

// outcome names how a turn ended, for the Observer.
func (l *Loop) outcome(res turnResult) string {
	switch {
	case l.leaseLost.Load() || res.cause != "":
		return OutcomeInterrupted
	case res.status == sdk.StatusCompleted && res.lost == "":
		return OutcomeCompleted
	case res.lost != "":
		return OutcomeLost
	}
	return OutcomeFailed
}

// turn starts one turn for the batch; serve then follows it to its end
// (finishTurn). On a session that can be steered, urgent messages that
// arrived together with regular work are put back first (Tinytown's
// deferral rule): the turn starts with the regular work and the
// urgent messages are steered into it at once, in their original order.
func (l *Loop) turn(ctx context.Context, b *batch) error {
	display := l.round + 1
	if l.choice.Has(sdk.CapSteer) && l.choice.Persistent {
		l.deferUrgent(ctx, b)
	}
	l.trackTask(ctx, b)
	text := prompt.Render(prompt.Turn{
		AgentName:     l.name,
		TownName:      l.cfg.Name,
		Actionable:    l.promptItems(ctx, b.actionable),
		Informational: b.informational,
		Confirmations: b.confirmations,
		Backlog:       l.promptBacklog(ctx),
		Round:         display,
		MaxRounds:     l.opts.MaxRounds,
		LiveSession:   l.choice.Persistent,
	})
	if working, err := l.markWorking(ctx); err != nil || !working {
		if err == nil {
			// Paused or stopped since the intake: nothing reached the CLI,
			// so every message goes back as it was; the next intake sees why.
			l.putBackUnseen(ctx, b)
		}
		return err
	}
	lv, err := l.ensureSession(ctx)
	if err != nil {
		return l.notStarted(ctx, b, display, "backend_unavailable", err)
	}
	l.say("🤖 Round %d: running %s through the %s backend (%d actionable, %d informational, %d confirmations)",
		display, l.cliName, l.choice.Backend, len(b.actionable), len(b.informational), b.confirmCount)
	in := sdk.Input{Kind: sdk.InputTurn, Text: text, TranscriptPath: l.transcriptPath(display)}
	l.recordTurn(ctx, town.TurnPending, display)
	d, err := lv.s.Send(ctx, in)
	if errors.Is(err, sdk.ErrPluginExited) {
		// The plugin died while the agent was idle and the news had not
		// arrived yet: nothing reached the CLI, so open a new session (the
		// manager relaunches the plugin) and send again, once.
		l.session = nil
		l.say("↻ The backend plugin had exited; relaunching it for this turn")
		if lv, err = l.ensureSession(ctx); err == nil {
			d, err = lv.s.Send(ctx, in)
		}
	}
	if err != nil {
		if errors.Is(err, sdk.ErrPluginExited) {
			l.session = nil
		}
		return l.notStarted(ctx, b, display, "turn_start_failed", err)
	}
	l.recordTurn(ctx, d.TurnID, display)
	l.running = &pendingTurn{id: d.TurnID, display: display, batch: b, deltas: newDeltaBuffer(l, display, d.TurnID), started: time.Now()}
	return nil
}

// recordTurn notes the running turn in the session record, for a
// successor that reattaches to the session (TurnPending while it is sent).
func (l *Loop) recordTurn(ctx context.Context, turnID string, display int) {
	if !l.registered {
		return
	}
	if err := l.store.RecordTurn(ctx, l.id, turnID, display); err != nil {
		l.log.Warn("record the running turn", "error", err)
	}
}

// finishTurn follows the running turn to its end and settles it; a turn an
// urgent message started meanwhile becomes the running one.
func (l *Loop) finishTurn(ctx context.Context) error {
	pt := l.running
	res := l.await(ctx, pt)
	if res.detached {
		return ctx.Err() // the successor settles the turn
	}
	if res.unsent {
		l.running = nil
		return l.unsent(context.WithoutCancel(ctx), pt)
	}
	l.running, l.next = l.next, nil
	if l.running != nil && (res.lost != "" || res.cause != "") {
		// The follow-up turn died with the session, or is cancelled with it.
		nb := l.running.batch
		l.running = nil
		l.putBack(context.WithoutCancel(ctx), nb)
	}
	l.opts.Observer.TurnEnded(TurnReport{Agent: l.ref(), Backend: l.choice.Backend, Outcome: l.outcome(res),
		Duration: time.Since(pt.started), Usage: pt.usage})
	return l.settle(ctx, pt.batch, pt.display, pt.id, res)
}

// markWorking records a running turn: state working, last_active_at and
// the heartbeat, and the current task running. working is false when a
// pause or stop reached the agent since the intake (setState): the turn
// must not start.
func (l *Loop) markWorking(ctx context.Context) (working bool, err error) {
	now := l.opts.Now()
	l.lastActive, l.lastBeat = now, now
	working, err = l.setState(ctx, town.AgentUpdate{State: town.StateWorking, Active: true, Heartbeat: true})
	if err != nil || !working {
		return false, err
	}
	l.startCurrentTask(ctx)
	return true, nil
}

// notStarted handles a turn that never reached the CLI: its messages go
// back to the front of the queues and the loop backs off.
func (l *Loop) notStarted(ctx context.Context, b *batch, display int, code string, cause error) error {
	if ctx.Err() != nil {
		l.putBack(context.WithoutCancel(ctx), b)
		return ctx.Err()
	}
	n := l.putBack(ctx, b)
	l.failures++
	msg := fmt.Sprintf("Round %d: turn could not start: %v; %d message(s) re-queued", display, cause, n)
	l.say("❌ %s", msg)
	l.activity(ctx, fmt.Sprintf("Round %d: ❌ failed: %s", display, prompt.Truncate(cause.Error(), 120)))
	l.emitOutcome(ctx, 0, town.EventAgentRuntimeError, msg, detail{Kind: "runtime_error", Round: display, Code: code})
	if l.failures >= maxStartFailures {
		return fmt.Errorf("%d turns in a row could not start; last error: %w", l.failures, cause)
	}
	return l.backoff(ctx)
}

// await follows the turn's events until its TurnCompleted (matched by turn
// id, never by order), while watching for stop and pause, steering urgent
// messages into a live session, and keeping the heartbeat fresh.
func (l *Loop) await(ctx context.Context, pt *pendingTurn) turnResult {
	lv := l.session
	steer := l.choice.Has(sdk.CapSteer) && l.choice.Persistent
	ctl := l.watchControl(ctx, steer)
	defer ctl.stop()
	beat := time.NewTicker(time.Duration(l.cfg.TTHost.HeartbeatSecs) * time.Second)
	defer beat.Stop()
	defer pt.deltas.stopTimer()
	var cause turnCause
	var dying string
	var forceClose <-chan time.Time
	bg := context.WithoutCancel(ctx)
	unnamed := pt.pendingGuard()
	// cancelTurn asks the backend to end the turn; one that does not end it
	// promptly has its session closed.
	cancelTurn := func(why turnCause) {
		cause = why
		l.say("⏹️ Round %d: %s; cancelling the turn", pt.display, why.text())
		if l.choice.Has(sdk.CapInterrupt) {
			if _, err := lv.s.Send(bg, sdk.Input{Kind: sdk.InputCancel}); err != nil {
				l.log.Warn("cancel the turn", "error", err)
			}
		} else {
			go func() { _ = lv.s.Close(bg, sdk.CloseImmediate) }()
		}
		forceClose = time.After(5 * time.Second)
	}
	for {
		if cause == "" && l.leaseLost.Load() {
			if l.leavesSessionOnLoss() {
				// The worker that took over may have adopted this very turn
				// (see finish): stop reading it, never cancel it.
				l.say("🔌 Round %d: left to the worker that took the agent over", pt.display)
				return turnResult{detached: true}
			}
			cancelTurn(causeLeaseLost)
		}
		select {
		case ev, ok := <-lv.events:
			if !ok && l.detaching.Load() {
				return turnResult{detached: true}
			}
			if !ok {
				l.session = nil
				pt.deltas.flush(bg)
				return turnResult{status: sdk.StatusFailed, lost: "the backend's event stream ended", cause: cause}
			}
			if ev.Kind != sdk.EventAssistantDelta {
				pt.deltas.flush(bg)
				if ev.Kind != sdk.EventTurnCompleted {
					l.handled(ev.Seq)
				}
			}
			pt.adopt(ev)
			switch ev.Kind {
			case sdk.EventAssistantDelta:
				if ev.TurnID == pt.id || ev.TurnID == "" {
					pt.deltas.add(bg, ev.Text, ev.Seq)
				} else {
					l.handled(ev.Seq) // another turn's text: nothing to write
				}
			case sdk.EventTurnCompleted:
				if ev.Completed == nil || ev.TurnID != pt.id {
					l.log.Warn("ignoring the completion of another turn", "turn", ev.TurnID, "running", pt.id)
					l.handled(ev.Seq)
					continue
				}
				c := ev.Completed
				if dying != "" && c.Status != sdk.StatusCompleted {
					// The turn failed because its session is going away: the
					// runtime died, not the work. Deliver it again.
					return turnResult{status: c.Status, lost: dying, cause: cause, seq: ev.Seq}
				}
				return turnResult{status: c.Status, exitCode: c.ExitCode, summary: c.Summary, errText: c.Error, cause: cause, seq: ev.Seq}
			case sdk.EventExited:
				l.session = nil
				reason := "the backend session exited"
				if ev.Exited != nil && ev.Exited.Reason != "" {
					reason += " (" + ev.Exited.Reason + ")"
				}
				return turnResult{status: sdk.StatusFailed, lost: reason, cause: cause}
			default:
				if ev.Kind == sdk.EventUsage && ev.Usage != nil && (ev.TurnID == pt.id || ev.TurnID == "") {
					pt.addUsage(*ev.Usage)
				}
				if ev.Kind == sdk.EventError && ev.Error != nil && ev.Error.Fatal {
					dying = "the backend session failed (" + oneLine(ev.Error.Message) + ")"
				}
				l.sessionEvent(bg, ev, pt.display)
			}
		case entries := <-ctl.urgent:
			if cause == "" {
				l.steer(ctx, pt, entries)
			} else if _, err := l.requeue(bg, entries...); err != nil {
				l.log.Error("re-queue urgent messages", "error", err)
			}
		case why := <-ctl.C:
			if cause != "" {
				continue
			}
			if why == causeShutdown && l.detaching.Load() {
				// Handed to a successor: the turn runs on, unread here.
				l.say("🔌 Round %d: left running for the next worker process", pt.display)
				return turnResult{detached: true}
			}
			cancelTurn(why)
		case <-unnamed:
			if pt.id == "" {
				return turnResult{unsent: true}
			}
		case <-forceClose:
			l.log.Warn("the backend did not end the cancelled turn in time; closing the session")
			l.closeSession(bg, sdk.CloseImmediate)
			return turnResult{status: sdk.StatusInterrupted, cause: cause}
		case <-pt.deltas.due():
			pt.deltas.flush(bg)
		case <-beat.C:
			l.heartbeat(bg, l.opts.Now())
			l.recordOutages(bg)
		}
	}
}

// sessionEvent records a runtime event that is not the turn's end.
func (l *Loop) sessionEvent(ctx context.Context, ev sdk.Event, display int) {
	switch ev.Kind {
	case sdk.EventTurnStarted:
		l.emit(ctx, town.EventAgentTurnStarted, fmt.Sprintf("Agent turn started (round %d)", display), detail{Kind: "turn_started", TurnID: ev.TurnID, Round: display})
	case sdk.EventToolCall:
		if t := ev.Tool; t != nil {
			l.activity(ctx, "🔧 Tool call: "+prompt.Truncate(t.Name, 120))
			l.emit(ctx, town.EventAgentToolCall, "Tool call: "+prompt.Truncate(t.Name, 160), detail{
				Kind: "tool_call", TurnID: ev.TurnID, Round: display, ToolKind: t.Kind, Status: t.Status, ExitCode: t.ExitCode,
			})
		}
	case sdk.EventApproval:
		if a := ev.Approval; a != nil {
			l.emit(ctx, town.EventAgentToolCall, fmt.Sprintf("Approval %s: %s", a.Decision, prompt.Truncate(a.Description, 140)), detail{
				Kind: "approval", TurnID: ev.TurnID, Round: display, Status: a.Decision, ToolKind: a.Kind,
			})
		}
	case sdk.EventUsage:
		if u := ev.Usage; u != nil {
			l.emit(ctx, town.EventAgentStateChanged, fmt.Sprintf("Token usage: %d in, %d out", u.InputTokens, u.OutputTokens), detail{
				Kind: "usage", TurnID: ev.TurnID, Round: display, Usage: u,
			})
		}
	case sdk.EventError:
		if e := ev.Error; e != nil {
			l.activity(ctx, "Runtime: "+prompt.Truncate(e.Message, 140))
			l.emit(ctx, town.EventAgentRuntimeError, "Runtime error: "+prompt.Truncate(e.Message, 160), detail{Kind: "error", TurnID: ev.TurnID, Round: display, Code: e.Code})
		}
	case sdk.EventSessionReady:
		l.sessionReady(ctx, ev)
	case sdk.EventAwaitingInput:
		l.emit(ctx, town.EventAgentAwaitingInput, "Agent runtime is awaiting input", detail{Kind: "awaiting_input"})
	}
}

// sessionReady saves the runtime session id for a later resume, records
// the session in the runtime record and reports it.
func (l *Loop) sessionReady(ctx context.Context, ev sdk.Event) {
	r := ev.Ready
	if r == nil {
		return
	}
	if r.ContextLostReason != "" {
		msg := "Saved session could not be resumed; started a new one: " + r.ContextLostReason
		l.activity(ctx, prompt.Truncate(msg, 150))
		l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: "context_lost", Code: "resume_failed"})
	}
	if l.registered {
		if r.RuntimeSessionID != "" {
			if err := l.store.SetRuntimeSessionID(ctx, l.id, r.RuntimeSessionID); err != nil {
				l.log.Warn("save runtime session id", "error", err)
			}
		}
		if err := l.store.SetRuntimeSession(ctx, l.id, r.RuntimeSessionID, string(r.SteerMode)); err != nil {
			l.log.Warn("record the runtime session", "error", err)
		}
	}
	msg := fmt.Sprintf("Runtime session ready on the %s backend", l.choice.Backend)
	if r.RuntimeSessionID != "" {
		msg += ": session " + r.RuntimeSessionID
	}
	if r.SteerMode != "" {
		msg += fmt.Sprintf(", urgent messages steered (%s)", r.SteerMode)
	}
	l.emit(ctx, town.EventAgentStateChanged, msg, detail{
		Kind: "session_ready", Backend: l.choice.Backend, SessionID: r.RuntimeSessionID, SteerMode: string(r.SteerMode), Resumed: r.Resumed,
	})
}

// settle gives every message of the turn its outcome.
func (l *Loop) settle(ctx context.Context, b *batch, display int, turnID string, res turnResult) error {
	bg := context.WithoutCancel(ctx)
	if l.leaseLost.Load() {
		// The messages belong to the worker that took over: it delivers
		// them again. Nothing of this turn is written.
		l.emit(bg, town.EventAgentTurnCompleted, fmt.Sprintf("Round %d abandoned: the worker lease was taken over", display),
			detail{Kind: "turn_interrupted", TurnID: turnID, Round: display, Status: string(res.status), Code: "lease_lost"})
		return ErrLeaseLost
	}
	switch {
	case res.status == sdk.StatusCompleted && res.lost == "":
		if err := l.ack(bg, b.entries...); err != nil {
			return err
		}
		l.round++
		l.completed++
		l.failures, l.retries = 0, 0
		if l.registered {
			// Once per turn: a successor may replay a completion whose
			// outcome was not written yet.
			if err := l.store.CountRound(bg, l.id, turnID); err != nil {
				return err
			}
		}
		if err := l.clearFinishedTask(bg); err != nil {
			return err
		}
		if err := l.becomeIdle(bg); err != nil {
			return err
		}
		summary := oneLine(res.summary)
		if summary == "" {
			summary = "completed"
		}
		l.say("✅ Round %d completed", display)
		l.activity(bg, fmt.Sprintf("Round %d: ✅ completed", display))
		l.emitOutcome(bg, res.seq, town.EventAgentTurnCompleted, fmt.Sprintf("Round %d completed: %s", display, prompt.Truncate(summary, 100)), detail{
			Kind: "turn_completed", TurnID: turnID, Round: display, Status: string(sdk.StatusCompleted), ExitCode: res.exitCode,
		})
		return nil

	case res.cause != "":
		n := l.putBack(bg, b)
		l.retries++
		msg := fmt.Sprintf("Round %d interrupted (%s); %d message(s) re-queued", display, res.cause, n)
		l.say("⏸️ %s", msg)
		l.activity(bg, fmt.Sprintf("Round %d: ⏸️ interrupted (%s); %d message(s) re-queued", display, res.cause, n))
		l.emitOutcome(bg, res.seq, town.EventAgentTurnCompleted, msg, detail{Kind: "turn_interrupted", TurnID: turnID, Round: display, Status: string(sdk.StatusInterrupted), Requeued: n})
		switch res.cause {
		case causeStop:
			return l.stopRequested(bg)
		case causeShutdown:
			return ctx.Err()
		}
		return nil // paused: the state stays paused; the loop waits

	case res.lost != "":
		n := l.putBack(bg, b)
		l.retries++
		l.failures++
		msg := fmt.Sprintf("Round %d: %s before the turn finished; %d message(s) re-queued", display, res.lost, n)
		l.say("❌ %s", msg)
		l.activity(bg, fmt.Sprintf("Round %d: ❌ failed: %s", display, res.lost))
		l.emitOutcome(bg, res.seq, town.EventAgentRuntimeError, msg, detail{Kind: "runtime_error", Round: display, Code: "runtime_lost"})
		return l.backoff(ctx)

	default: // the CLI failed the turn
		n := l.putBack(bg, b)
		l.round++ // a failed attempt counts toward max_rounds, so a broken CLI cannot loop forever
		l.failures++
		l.retries = 0
		why := res.errText
		if why == "" {
			why = string(res.status)
		}
		msg := fmt.Sprintf("Round %d failed: %s; %d message(s) re-queued", display, why, n)
		l.say("⚠️ %s", msg)
		l.activity(bg, fmt.Sprintf("Round %d: ⚠️ CLI error (%s)", display, prompt.Truncate(why, 100)))
		l.emitOutcome(bg, res.seq, town.EventAgentRuntimeError, msg, detail{Kind: "turn_failed", TurnID: turnID, Round: display, Status: string(res.status), ExitCode: res.exitCode, Requeued: n})
		if err := l.becomeIdle(bg); err != nil {
			return err
		}
		return l.backoff(ctx)
	}
}

// putBack re-queues the turn's real actionable messages at the front of
// their queues (in order), acknowledges the rest (they were shown), and
// returns the turn's task to assigned. It returns how many were re-queued.
func (l *Loop) putBack(ctx context.Context, b *batch) int {
	act := b.realActionable()
	if _, err := l.requeue(ctx, act...); err != nil {
		l.log.Error("re-queue messages", "error", err)
	}
	if err := l.ack(ctx, b.nonActionable()...); err != nil {
		l.log.Error("acknowledge shown messages", "error", err)
	}
	l.returnTask(ctx, b)
	return len(act)
}

// putBackUnseen returns a batch that never reached the CLI: every message,
// actionable or not, goes back to the front of its queue in order, and the
// turn's task is no longer current.
func (l *Loop) putBackUnseen(ctx context.Context, b *batch) {
	if _, err := l.requeue(ctx, b.entries...); err != nil {
		l.log.Error("re-queue messages", "error", err)
	}
	l.returnTask(ctx, b)
}

// backoff waits after a failed turn: 1 s, 2 s, 4 s … up to 60 s, so a
// broken CLI does not replay its work once a second. A stop or pause ends
// the wait early (the main loop then handles it).
func (l *Loop) backoff(ctx context.Context) error {
	if l.failures <= 0 {
		return nil
	}
	d := min(time.Second<<min(l.failures-1, 6), time.Minute)
	deadline := l.opts.Now().Add(d) // by the loop's clock, fixed before the log says it
	l.say("⏳ Backing off %s after %d failure(s) in a row", d, l.failures)
	for {
		left := deadline.Sub(l.opts.Now())
		if left <= 0 {
			return nil
		}
		if err := l.wait(ctx, left); err != nil {
			return err
		}
		stop, state, err := l.store.ControlState(ctx, l.id)
		if err != nil {
			return err
		}
		if stop || state == town.StatePaused {
			return nil
		}
	}
}

// trackTask sets current_task when the turn carries exactly one task
// assignment.
func (l *Loop) trackTask(ctx context.Context, b *batch) {
	var ids []string
	for _, it := range b.actionable {
		if it.msg.Type == town.TypeTaskAssign {
			ids = append(ids, it.msg.TaskID)
		}
	}
	if len(ids) != 1 || !l.registered {
		return
	}
	if err := l.store.SetCurrentTask(ctx, l.id, ids[0]); err != nil {
		l.log.Warn("set current task", "error", err)
		return
	}
	l.current = ids[0]
}

// startCurrentTask marks the agent's current task running. Tinytown falls
// back to scanning every task for the single one assigned to the agent;
// that scan costs a Redis round trip per task on every turn, and the task
// it would find is the one this turn's task_assign already made current.
func (l *Loop) startCurrentTask(ctx context.Context) {
	if l.current == "" {
		return
	}
	task, err := l.store.GetTask(ctx, l.current)
	if err != nil || task.State.Terminal() || task.State == town.TaskRunning {
		return
	}
	if _, err := l.store.StartTask(ctx, task.ID); err != nil {
		l.log.Warn("mark task running", "task", task.ID, "error", err)
	}
}

// returnTask moves a running task of this turn back to assigned and clears
// current_task. Unlike Tinytown it leaves alone a task that belongs to other
// work (docs/compatibility.md#d10).
func (l *Loop) returnTask(ctx context.Context, b *batch) {
	mine := map[string]bool{}
	for _, it := range b.actionable {
		if it.msg.Type == town.TypeTaskAssign {
			mine[it.msg.TaskID] = true
		}
	}
	for id := range mine {
		task, err := l.store.GetTask(ctx, id)
		if err == nil && task.State == town.TaskRunning {
			if _, err := l.store.ReturnToAssigned(ctx, id); err != nil {
				l.log.Warn("return task to assigned", "task", id, "error", err)
			}
		}
		if l.current == id {
			l.current = ""
			if l.registered {
				if err := l.store.ClearCurrentTask(ctx, l.id); err != nil {
					l.log.Warn("clear current task", "error", err)
				}
			}
		}
	}
}

// promptBacklog is the backlog snapshot shown in a turn prompt. An empty
// backlog (the last intake saw its length) needs no snapshot.
func (l *Loop) promptBacklog(ctx context.Context) prompt.Backlog {
	if l.backlogSeen == 0 {
		role := town.RoleForName(l.name)
		return prompt.Backlog{Hint: role.Hint()}
	}
	snap, err := l.store.BacklogSnapshot(ctx, l.name, 8)
	if err != nil {
		l.log.Warn("backlog snapshot", "error", err)
		return prompt.Backlog{}
	}
	out := prompt.Backlog{Total: snap.Total, Matching: snap.Matching, Hint: snap.Hint}
	for _, t := range snap.Shown {
		out.Shown = append(out.Shown, prompt.BacklogTask{ID: t.ID, Description: t.Description, Tags: t.Tags})
	}
	return out
}

func isNotFound(err error) bool {
	return errors.Is(err, town.ErrTaskNotFound) || errors.Is(err, town.ErrAgentNotFound)
}
