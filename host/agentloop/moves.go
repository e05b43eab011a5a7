package agentloop

import (
	"context"
	"errors"
	"fmt"

	"github.com/tthost/tthost/host/town"
)

// Message moves. Every write that moves one of the agent's messages goes
// through the lease's fenced Worker, so Redis refuses it once another
// worker holds the agent (see lease.go). A refusal because the lease merely
// expired (nobody took the agent since: a long Redis outage, a stall) is
// healed by re-taking the lease and trying once more.

// ErrLeaseLost ends a loop whose agent another worker took over.
// ErrLeaseLost is returned by Run when another worker took the agent over
// (or its host gave the lease up): the loop wrote nothing after that.
var ErrLeaseLost = errors.New("the worker lease was taken over by another worker")

// fenced runs op; see the comment above.
func (l *Loop) fenced(ctx context.Context, op func() error) error {
	err := op()
	if !errors.Is(err, town.ErrFenced) {
		return err
	}
	if rerr := l.lease.Refresh(ctx); rerr == nil {
		l.log.Info("the worker lease had expired with nobody taking the agent; re-took it")
		if err = op(); !errors.Is(err, town.ErrFenced) {
			return err
		}
	}
	l.loseLease(ctx, err)
	return err
}

// intake takes the next messages, bounded by max_turn_messages and
// max_turn_bytes unless opts says otherwise.
func (l *Loop) intake(ctx context.Context, opts town.IntakeOptions) (res town.IntakeResult, err error) {
	if opts.Max == 0 {
		opts.Max = l.cfg.TTHost.MaxTurnMessages
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = l.cfg.TTHost.MaxTurnBytes
	}
	err = l.fenced(ctx, func() (e error) { res, e = l.worker.Intake(ctx, opts); return e })
	if err == nil && !res.Quick {
		l.opts.Observer.QueueDepth(l.ref(), res.InboxLeft, res.UrgentLeft)
	}
	return res, err
}

func (l *Loop) ack(ctx context.Context, entries ...town.Entry) error {
	return l.fenced(ctx, func() error { return l.worker.Ack(ctx, entries...) })
}

func (l *Loop) requeue(ctx context.Context, entries ...town.Entry) (n int, err error) {
	err = l.fenced(ctx, func() (e error) { n, e = l.worker.Requeue(ctx, entries...); return e })
	return n, err
}

func (l *Loop) deadLetterAs(ctx context.Context, e town.Entry, reason string) error {
	return l.fenced(ctx, func() error { return l.worker.DeadLetter(ctx, e, reason) })
}

func (l *Loop) reroute(ctx context.Context, e town.Entry) error {
	return l.fenced(ctx, func() error { return l.worker.Reroute(ctx, e) })
}

// loseLease records, once, that another worker serves the agent now: the
// loop starts no turn, cancels the running one, moves no message and
// writes no agent state from here on, and exits.
// LoseLease ends the loop's service as if its lease were taken over: a
// running turn is cancelled and nothing of the agent's is written any
// more. Its host calls it when the lease is gone (another host holds it)
// or can no longer be vouched for (the host lost Redis for longer than
// its lease); the host cancels the loop's context after it.
func (l *Loop) LoseLease(cause error) {
	if !l.leaseLost.CompareAndSwap(false, true) {
		return
	}
	msg := fmt.Sprintf("Lost the worker lease of agent %s: this worker stops without touching its messages (%v)", l.name, cause)
	l.say("🚫 %s", msg)
	l.log.Error("worker lease lost", "error", cause)
}

func (l *Loop) ref() AgentRef { return AgentRef{ID: l.id, Name: l.name, CLI: l.cliName} }

func (l *Loop) loseLease(ctx context.Context, cause error) {
	if !l.leaseLost.CompareAndSwap(false, true) {
		return
	}
	who := "another worker"
	if h, err := l.store.LeaseHolder(ctx, l.id); err == nil && h != nil {
		who = fmt.Sprintf("pid %d on host %s", h.PID, h.Host)
	}
	msg := fmt.Sprintf("Lost the worker lease: %s serves agent %s now; this worker stops without touching its messages (%v)", who, l.name, cause)
	l.say("🚫 %s", msg)
	l.log.Error("worker lease lost", "holder", who, "error", cause)
	l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: "lease_lost", Code: "fenced"})
}
