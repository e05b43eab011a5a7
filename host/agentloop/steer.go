package agentloop

import (
	"context"
	"fmt"
	"time"

	"github.com/tthost/tthost/host/prompt"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// Steering: on a persistent session that declares "steer", urgent messages
// that arrive while a turn runs are added to that turn (Codex's
// turn/steer) instead of waiting for the next round.

// deferUrgent puts the batch's urgent actionable messages back on the
// urgent list (front, original order) when regular actionable work came
// with them, so the turn starts with the regular work and steers them in.
func (l *Loop) deferUrgent(ctx context.Context, b *batch) {
	var urgent []town.Entry
	regular := false
	for _, it := range b.actionable {
		switch {
		case it.urgent && it.entry != nil:
			urgent = append(urgent, *it.entry)
		case !it.urgent:
			regular = true
		}
	}
	if len(urgent) == 0 || !regular {
		return
	}
	if _, err := l.requeue(ctx, urgent...); err != nil {
		l.log.Warn("defer urgent messages", "error", err)
		return
	}
	keep := b.actionable[:0]
	for _, it := range b.actionable {
		if !it.urgent {
			keep = append(keep, it)
		}
	}
	b.actionable = keep
	b.dropEntries(urgent)
	l.say("⏩ %d urgent message(s) arrived with regular work: starting with the regular work and steering them in", len(urgent))
}

// steer delivers urgent messages that arrived during a turn into it. Those
// that are not actionable are handled without the model (they are counted
// in the activity log, not dropped: Tinytown discarded them,
// docs/compatibility.md#d13). A failed steer puts the messages back and
// says so (docs/compatibility.md#d4).
func (l *Loop) steer(ctx context.Context, pt *pendingTurn, entries []town.Entry) {
	taken := time.Now()
	b := l.classify(ctx, entries)
	if len(b.actionable) == 0 {
		if len(b.entries) > 0 {
			pt.batch.entries = append(pt.batch.entries, b.entries...)
			l.activity(ctx, fmt.Sprintf("Round %d: ⏭️ auto-handled %d urgent informational, %d confirmations during the turn", pt.display, len(b.informational), b.confirmCount))
		}
		return
	}
	text := prompt.RenderSteer(prompt.Steer{AgentName: l.name, Actionable: l.promptItems(ctx, b.actionable), Round: pt.display, MaxRounds: l.opts.MaxRounds})
	d, err := l.session.s.Send(ctx, sdk.Input{Kind: sdk.InputUrgent, Text: text, TranscriptPath: l.transcriptPath(pt.display)})
	if err != nil {
		n, rerr := l.requeue(context.WithoutCancel(ctx), b.realActionable()...)
		if rerr != nil {
			l.log.Error("re-queue urgent messages after a failed steer", "error", rerr)
		}
		_ = l.ack(context.WithoutCancel(ctx), b.nonActionable()...)
		msg := fmt.Sprintf("Round %d: could not steer %d urgent message(s) into the turn: %v; re-queued %d", pt.display, len(b.actionable), err, n)
		l.say("⚠️ %s", msg)
		l.runtimeError(ctx, pt.display, "steer_failed", msg)
		return
	}
	switch {
	case d.Kind == sdk.DeliveryStarted && d.TurnID != pt.id:
		// The running turn ended just before: the backend started a new
		// turn for the urgent messages; it is followed after this one.
		l.next = &pendingTurn{id: d.TurnID, display: pt.display + 1, batch: b, deltas: newDeltaBuffer(l, pt.display+1, d.TurnID), started: time.Now()}
		l.say("↪️ Round %d had ended: %d urgent message(s) started round %d", pt.display, len(b.actionable), pt.display+1)
	default:
		pt.batch.entries = append(pt.batch.entries, b.entries...)
		pt.batch.actionable = append(pt.batch.actionable, b.actionable...)
		l.opts.Observer.Steered(l.ref(), time.Since(taken))
		how := steerHow(d.SteerMode)
		l.say("↪️ Round %d: steered %d urgent message(s) into the running turn%s", pt.display, len(b.actionable), how)
		l.emit(ctx, town.EventAgentStateChanged, fmt.Sprintf("Steered %d urgent message(s) into round %d%s", len(b.actionable), pt.display, how),
			detail{Kind: "steered", TurnID: pt.id, Round: pt.display, SteerMode: string(d.SteerMode)})
	}
}

// steerHow says, for the log, how an emulated steer joined the turn; a
// native steer (or a plugin that does not say) needs no words.
func steerHow(m sdk.SteerMode) string {
	switch m {
	case sdk.SteerQueue:
		return " (queued: prompted as soon as the CLI's running prompt ends, within this round)"
	case sdk.SteerRestart:
		return " (restart: the CLI's running prompt was cancelled and prompted again with them)"
	}
	return ""
}
