package agentloop

import (
	"context"
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
// (ref §2.2). An entry that does not parse goes to the dead-letter list
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
		if e.Msg == nil {
			l.deadLetter(ctx, e)
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

func (l *Loop) deadLetter(ctx context.Context, e town.Entry) {
	reason := "unparseable message"
	if e.ParseErr != nil {
		reason = e.ParseErr.Error()
	}
	if err := l.store.DeadLetter(ctx, l.id, e, reason); err != nil {
		l.log.Error("move a bad message to the dead-letter list", "error", err)
		return
	}
	msg := fmt.Sprintf("Message could not be parsed and was moved to the dead-letter list: %s", reason)
	l.say("☠️ %s", msg)
	l.activity(ctx, "☠️ "+prompt.Truncate(msg, 140))
	l.emit(ctx, town.EventAgentRuntimeError, msg, detail{Kind: "dead_letter", Code: "invalid_message"})
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
// offer (ref §3 step 7); backlogTotal is the size of the (unmatched) backlog.
func (l *Loop) autoHandled(ctx context.Context, b *batch, backlogTotal int) {
	line := fmt.Sprintf("Round %d: ⏭️ auto-handled %d informational, %d confirmations", l.round+1, len(b.informational), b.confirmCount)
	if backlogTotal > 0 {
		line = fmt.Sprintf("Round %d: ⏭️ no direct work and %d backlog task(s) did not match role hint", l.round+1, backlogTotal)
	}
	l.activity(ctx, line)
	l.emit(ctx, town.EventAgentStateChanged, fmt.Sprintf("Handled %d informational message(s) and %d confirmation(s) without a turn; idle",
		len(b.informational), b.confirmCount), detail{Kind: "auto_handled"})
	if err := l.store.Ack(ctx, l.id, b.entries...); err != nil {
		l.log.Error("acknowledge auto-handled messages", "error", err)
	}
	if err := l.becomeIdle(ctx); err != nil {
		l.log.Warn("mark idle", "error", err)
	}
}
