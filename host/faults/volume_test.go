package faults

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/host/town"
)

// bulkMessages is how many messages the volume test queues; bulkPerTurn is
// its max_turn_messages: 80 turns of 500, so the drain takes seconds (a turn
// costs the worker tens of milliseconds, record.sh a few per 500 tokens).
const (
	bulkMessages = 40000
	bulkPerTurn  = 500
)

// 40 000 messages queued the way `tt` queues them (plain RPUSH, no wake
// signal) are all run, each exactly once and in order, no turn carrying
// more than max_turn_messages, and the worker never fails.
func TestFortyThousandQueuedMessagesRunOnceEachInOrder(t *testing.T) {
	e := newEnv(t, settings{"max_turn_messages": bulkPerTurn})
	a := e.agent("bulk")
	tokens := make([]string, bulkMessages)
	raws := make([]string, 0, 1000)
	inbox := e.store.Keys().Inbox(a.ID)
	for i := range tokens {
		tokens[i] = e.token()
		raws = append(raws, mustRaw(t, task(a.ID, tokens[i], "bulk")))
		if len(raws) == cap(raws) || i == len(tokens)-1 {
			e.pushRaw(inbox, raws...)
			raws = raws[:0]
		}
	}

	start := time.Now()
	p := e.agentLoop(a, 1000000)
	last := tokens[len(tokens)-1]
	e.waitRuns(3*time.Minute, fmt.Sprintf("all %d messages to end", bulkMessages), func(r *runs) bool {
		return len(r.ends) == bulkMessages && r.ends[last] > 0
	}, p)
	t.Logf("%d messages drained in %s", bulkMessages, time.Since(start).Round(time.Millisecond))
	e.stop(p, a.ID)

	r := e.readRuns()
	var wrong []string
	for _, tok := range tokens {
		if r.starts[tok] != 1 || r.ends[tok] != 1 {
			wrong = append(wrong, fmt.Sprintf("%s ran %d/%d", tok, r.starts[tok], r.ends[tok]))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d message(s) did not run exactly once (started/ended), e.g. %s", len(wrong), strings.Join(wrong[:min(len(wrong), 10)], ", "))
	}
	if !slices.Equal(r.order, tokens) {
		i := 0
		for i < len(r.order) && i < len(tokens) && r.order[i] == tokens[i] {
			i++
		}
		t.Errorf("messages ran out of order: the %d-th run start is %s, want %s", i+1, at(r.order, i), at(tokens, i))
	}
	if big := slices.Max(r.sizes); big > bulkPerTurn {
		t.Errorf("a turn carried %d messages, more than max_turn_messages = %d (turn sizes: %s)", big, bulkPerTurn, summarize(r.sizes))
	}
	if n := len(r.sizes); n < bulkMessages/bulkPerTurn {
		t.Errorf("%d turns for %d messages, want at least %d", n, bulkMessages, bulkMessages/bulkPerTurn)
	}
	if n, _ := e.store.InboxLen(e.ctx(), a.ID); n != 0 {
		t.Errorf("%d message(s) left in the inbox", n)
	}
	e.assertClean(a.ID)
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(nothing)"
}

// summarize shortens a list of turn sizes for a message: "500 x79, 12".
func summarize(sizes []int) string {
	var parts []string
	for i := 0; i < len(sizes); {
		j := i
		for j < len(sizes) && sizes[j] == sizes[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%d x%d", sizes[i], j-i))
		} else {
			parts = append(parts, strconv.Itoa(sizes[i]))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

// A message larger than max_turn_bytes cannot go into any turn: it is
// dead-lettered with a message_too_large event that names its size, and
// the messages around it run exactly once.
func TestMessageLargerThanMaxTurnBytesIsDeadLettered(t *testing.T) {
	const limit = 65536
	e := newEnv(t, settings{"max_turn_bytes": limit})
	a := e.agent("picky")
	before, huge, after := e.token(), e.token(), e.token()
	hugeRaw := mustRaw(t, task(a.ID, huge, strings.Repeat("x", 2*limit)))
	e.pushRaw(e.store.Keys().Inbox(a.ID),
		mustRaw(t, task(a.ID, before, "small")), hugeRaw, mustRaw(t, task(a.ID, after, "small")))

	p := e.agentLoop(a, 100)
	e.waitEnded(long, []*proc{p}, before, after)
	// The huge message was taken with or before the second small one, so
	// its event is due by now.
	ev := e.findEvent(a.ID, 5*time.Second, func(ev *town.TownEvent) bool { return kindOf(ev) == "message_too_large" })
	e.stop(p, a.ID)

	r := e.readRuns()
	e.assertOnce(r, before, after)
	e.assertRuns(r, huge, 0, 0)
	dead, err := e.store.DeadLetters(e.ctx(), a.ID)
	if err != nil || len(dead) != 1 || dead[0].Raw != hugeRaw {
		var got []string
		for _, d := range dead {
			got = append(got, fmt.Sprintf("%d bytes: %s", len(d.Raw), d.Error))
		}
		t.Errorf("dead letters %q (%v); want only the %d-byte message, byte for byte", got, err, len(hugeRaw))
	}
	size := strconv.Itoa(len(hugeRaw))
	switch {
	case ev == nil:
		t.Errorf("no event of kind message_too_large; events:\n%s", e.dumpEvents(a.ID))
	case !strings.Contains(ev.Message, size):
		t.Errorf("message_too_large event %q does not name the message's size (%s bytes)", ev.Message, size)
	}
	e.assertClean(a.ID)
}
