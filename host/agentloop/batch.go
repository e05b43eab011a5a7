package agentloop

import (
	"context"
	"errors"
	"fmt"

	"github.com/tthost/tthost/host/prompt"
	"github.com/tthost/tthost/host/town"
)

// item is one actionable message of a turn. entry is nil for the synthetic
// backlog query, which never was in Redis and is never re-queued.
type item struct {
	entry  *town.Entry
	msg    *town.Message
	urgent bool
}

// batch is what one intake produced, classified.
type batch struct {
	entries       []town.Entry // every parsed entry, actionable or not
	actionable    []item
	informational []string
	confirmations map[string]int
	confirmCount  int
}

func (b *batch) empty() bool         { return len(b.entries) == 0 && len(b.actionable) == 0 }
func (b *batch) hasActionable() bool { return len(b.actionable) > 0 }

// realActionable returns the actionable entries that live in Redis.
func (b *batch) realActionable() []town.Entry {
	var out []town.Entry
	for _, it := range b.actionable {
		if it.entry != nil {
			out = append(out, *it.entry)
		}
	}
	return out
}

// dropEntries removes entries (by their stored element) from the batch.
func (b *batch) dropEntries(drop []town.Entry) {
	gone := map[string]bool{}
	for _, e := range drop {
		gone[e.Stored] = true
	}
	// A new slice: items point into the old one, which must not change.
	keep := make([]town.Entry, 0, len(b.entries))
	for _, e := range b.entries {
		if !gone[e.Stored] {
			keep = append(keep, e)
		}
	}
	b.entries = keep
}

// nonActionable returns the parsed entries that are not actionable.
func (b *batch) nonActionable() []town.Entry {
	act := map[string]bool{}
	for _, it := range b.actionable {
		if it.entry != nil {
			act[it.entry.Stored] = true
		}
	}
	var out []town.Entry
	for _, e := range b.entries {
		if !act[e.Stored] {
			out = append(out, e)
		}
	}
	return out
}

// classify sorts entries into actionable, informational and confirmations
// . An entry that does not parse goes to the dead-letter list
// with an event and an activity line: never dropped, never fatal.
func (l *Loop) classify(ctx context.Context, entries []town.Entry) *batch {
	b := &batch{confirmations: map[string]int{}}
	// Urgent first, in the order they were taken.
	ordered := make([]town.Entry, 0, len(entries))
	for _, e := range entries {
		if e.Urgent {
			ordered = append(ordered, e)
		}
	}
	for _, e := range entries {
		if !e.Urgent {
			ordered = append(ordered, e)
		}
	}
	for _, e := range ordered {
		switch {
		case e.Msg == nil:
			l.deadLetter(ctx, e)
			continue
		case len(e.Raw) > l.cfg.TTHost.MaxTurnBytes:
			l.tooLarge(ctx, e)
			continue
		case l.misaddressed(e.Msg):
			l.redirect(ctx, e)
			continue
		}
		b.entries = append(b.entries, e)
	}
	// b.entries is complete: items may now point into it.
	for i := range b.entries {
		e := &b.entries[i]
		switch town.Classify(e.Msg) {
		case town.CategoryInformational:
			b.informational = append(b.informational, town.TruncateSummary(town.SummarizeMessage(e.Msg), 100))
		case town.CategoryConfirmation:
			b.confirmations[town.TruncateSummary(town.SummarizeMessage(e.Msg), 60)]++
			b.confirmCount++
		default:
			b.actionable = append(b.actionable, item{entry: e, msg: e.Msg, urgent: e.Urgent})
		}
	}
	return b
}

// setAside moves a message that cannot be delivered to the dead-letter
// list, with its raw bytes and reason, and says so in the log, the activity
// log and an event (detail kind, code): never dropped, never silent.
func (l *Loop) setAside(ctx context.Context, e town.Entry, reason, kind, code string) {
	if err := l.deadLetterAs(ctx, e, reason); err != nil {
		l.log.Error("move a message to the dead-letter list", "kind", kind, "error", err)
		return
	}
	msg := "Moved to the dead-letter list: " + reason
	l.say("☠️ %s", msg)
	l.activity(ctx, "☠️ "+prompt.Truncate(msg, 140))
	l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: kind, Code: code})
}

// deadLetter sets aside a message that does not parse.
func (l *Loop) deadLetter(ctx context.Context, e town.Entry) {
	reason := "unparseable message"
	if e.ParseErr != nil {
		reason = e.ParseErr.Error()
	}
	l.setAside(ctx, e, "the message could not be parsed: "+reason, "dead_letter", "invalid_message")
}

// tooLarge sets aside a message larger than a whole turn may carry
// (max_turn_bytes): it could never be delivered, and holding it would wedge
// the queue behind it.
func (l *Loop) tooLarge(ctx context.Context, e town.Entry) {
	l.setAside(ctx, e, fmt.Sprintf("message %s is %d bytes, larger than max_turn_bytes (%d): it cannot be delivered in a turn",
		e.Msg.ID, len(e.Raw), l.cfg.TTHost.MaxTurnBytes), "message_too_large", "message_too_large")
}

// misaddressed reports a message in this agent's queues whose "to" names
// another agent (a writer's mistake, or a message moved by hand).
func (l *Loop) misaddressed(m *town.Message) bool {
	to, err := town.ParseID(m.To)
	return err == nil && to != l.id
}

// redirect hands a misaddressed message to its recipient's inbox, or sets
// it aside when the recipient does not exist; either way with an event.
func (l *Loop) redirect(ctx context.Context, e town.Entry) {
	err := l.reroute(ctx, e)
	switch {
	case errors.Is(err, town.ErrAgentNotFound):
		l.setAside(ctx, e, fmt.Sprintf("message %s is addressed to agent %s, which does not exist", e.Msg.ID, e.Msg.To),
			"dead_letter", "misaddressed")
	case err != nil:
		l.log.Error("re-route a misaddressed message", "error", err)
	default:
		msg := fmt.Sprintf("Message %s was addressed to agent %s: re-routed to its inbox", e.Msg.ID, e.Msg.To)
		l.say("↪️ %s", msg)
		l.activity(ctx, "↪️ "+prompt.Truncate(msg, 140))
		l.emit(ctx, town.EventAgentStateChanged, msg, detail{Kind: "message_rerouted", Code: e.Msg.To})
	}
}

// promptItems turns the actionable messages into prompt items, looking up
// the description of each assigned task.
func (l *Loop) promptItems(ctx context.Context, items []item) []prompt.Item {
	out := make([]prompt.Item, 0, len(items))
	for _, it := range items {
		pi := prompt.Item{Urgent: it.urgent, From: l.senderLabel(it.msg.From), MessageID: it.msg.ID}
		if it.msg.Type == town.TypeTaskAssign {
			pi.TaskID = it.msg.TaskID
			if task, err := l.store.GetTask(ctx, it.msg.TaskID); err == nil {
				pi.TaskDescription = task.Description
			}
		} else {
			pi.Text = town.SummarizeMessage(it.msg)
		}
		out = append(out, pi)
	}
	return out
}

func (l *Loop) senderLabel(from string) string {
	if from == town.SupervisorID {
		return "supervisor"
	}
	return from
}

// autoHandled finishes a batch with nothing actionable and no backlog to
// offer; backlogTotal is the size of the (unmatched) backlog.
func (l *Loop) autoHandled(ctx context.Context, b *batch, backlogTotal int) {
	line := fmt.Sprintf("Round %d: ⏭️ auto-handled %d informational, %d confirmations", l.round+1, len(b.informational), b.confirmCount)
	if backlogTotal > 0 {
		line = fmt.Sprintf("Round %d: ⏭️ no direct work and %d backlog task(s) did not match role hint", l.round+1, backlogTotal)
	}
	l.activity(ctx, line)
	l.emit(ctx, town.EventAgentStateChanged, fmt.Sprintf("Handled %d informational message(s) and %d confirmation(s) without a turn; idle",
		len(b.informational), b.confirmCount), detail{Kind: "auto_handled"})
	if err := l.ack(ctx, b.entries...); err != nil {
		l.log.Error("acknowledge auto-handled messages", "error", err)
	}
	if err := l.becomeIdle(ctx); err != nil {
		l.log.Warn("mark idle", "error", err)
	}
}
