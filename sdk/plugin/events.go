package plugin

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tthost/tthost/sdk"
)

// Event buffering limits. A session's events are numbered and kept in a
// bounded history so that a host can subscribe late, or subscribe again
// after a broken stream, without losing anything recent.
const (
	// historySize is how many committed events a session keeps.
	historySize = 8192
	// deltaFlushBytes and deltaFlushDelay bound how long assistant text
	// waits to be coalesced: a host sees at most one delta per 100 ms or
	// 4 KiB per turn, never one event per token.
	deltaFlushBytes = 4 << 10
	deltaFlushDelay = 100 * time.Millisecond
)

var (
	// errHistoryGone: the subscriber asked for events older than the
	// history holds (OUT_OF_RANGE on the wire).
	errHistoryGone = errors.New("events after that seq are no longer buffered")
	// errSeqAhead: the subscriber asked to start after a seq that was never
	// emitted (OUT_OF_RANGE on the wire).
	errSeqAhead = errors.New("after_seq is beyond the last event")
)

// eventLog is a session's EventSink. It numbers events 1, 2, 3, ... without
// gaps, stamps them, keeps a bounded history for subscribers and coalesces
// assistant deltas. Emit only takes a short mutex: it never waits for a
// subscriber, so a slow host cannot stall the backend.
type eventLog struct {
	sessionID  string
	history    int
	flushBytes int
	flushDelay time.Duration
	now        func() time.Time

	mu   sync.Mutex
	ring []sdk.Event // committed events; seq s lives at ring[(s-1)%history]
	next uint64      // seq of the next committed event
	// pending is the assistant text waiting to be coalesced; its Seq is
	// assigned when it is flushed, so order among events is preserved.
	pending     *sdk.Event
	pendingText strings.Builder
	timer       *time.Timer
	flushes     uint64 // bumped at every flush, so a stale timer does nothing
	exited      bool
	wake        chan struct{} // closed and replaced at every commit
}

func newEventLog(sessionID string) *eventLog {
	return &eventLog{
		sessionID:  sessionID,
		history:    historySize,
		flushBytes: deltaFlushBytes,
		flushDelay: deltaFlushDelay,
		now:        time.Now,
		next:       1,
		wake:       make(chan struct{}),
	}
}

// Emit implements EventSink.
func (l *eventLog) Emit(e sdk.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	e.SessionID = l.sessionID
	e.Seq = 0
	e.Time = l.now()
	if e.Kind == sdk.EventAssistantDelta {
		l.addDeltaLocked(e)
		return
	}
	l.flushLocked()
	l.commitLocked(e)
	if e.Kind == sdk.EventExited {
		l.exited = true
	}
}

// ensureExited emits Exited unless the session already did, so that every
// stream ends even when a backend forgets.
func (l *eventLog) ensureExited(info sdk.ExitInfo) {
	l.Emit(sdk.ExitedEvent(info))
}

func (l *eventLog) addDeltaLocked(e sdk.Event) {
	if e.Text == "" {
		return
	}
	if l.pending != nil && l.pending.TurnID != e.TurnID {
		l.flushLocked()
	}
	if l.pending == nil {
		text := e.Text
		e.Text = ""
		l.pending = &e
		l.pendingText.Reset()
		l.pendingText.WriteString(text)
		gen := l.flushes
		l.timer = time.AfterFunc(l.flushDelay, func() { l.flushTimer(gen) })
	} else {
		l.pendingText.WriteString(e.Text)
	}
	if l.pendingText.Len() >= l.flushBytes {
		l.flushLocked()
	}
}

func (l *eventLog) flushTimer(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flushes == gen {
		l.flushLocked()
	}
}

// flushLocked commits the pending delta, if any.
func (l *eventLog) flushLocked() {
	if l.pending == nil {
		return
	}
	l.timer.Stop()
	l.timer = nil
	l.flushes++
	e := *l.pending
	e.Text = l.pendingText.String()
	l.pending = nil
	l.pendingText.Reset()
	l.commitLocked(e)
}

func (l *eventLog) commitLocked(e sdk.Event) {
	e.Seq = l.next
	l.next++
	if len(l.ring) < l.history {
		l.ring = append(l.ring, e)
	} else {
		l.ring[(e.Seq-1)%uint64(l.history)] = e
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// since returns up to max committed events with seq greater than after,
// a channel closed at the next commit, and done: no event will follow the
// ones returned (they reach Exited, or Exited is at or before after).
func (l *eventLog) since(after uint64, max int) (evs []sdk.Event, wake <-chan struct{}, done bool, err error) {
	return l.sinceGap(after, max, false)
}

// sinceGap is since, except that with allowGap an after older than the
// history is not an error: the events start at the oldest one buffered,
// and the jump in seq tells the subscriber what it missed.
func (l *eventLog) sinceGap(after uint64, max int, allowGap bool) (evs []sdk.Event, wake <-chan struct{}, done bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.next - 1
	oldest := uint64(1)
	if last > uint64(l.history) {
		oldest = last - uint64(l.history) + 1
	}
	switch {
	case after > last:
		return nil, nil, false, errSeqAhead
	case after+1 < oldest && allowGap:
		after = oldest - 1
	case after+1 < oldest:
		return nil, nil, false, errHistoryGone
	}
	n := min(last-after, uint64(max))
	if n > 0 {
		evs = make([]sdk.Event, n)
		for i := range evs {
			evs[i] = l.ring[(after+uint64(i))%uint64(l.history)]
		}
	}
	return evs, l.wake, l.exited && after+n >= last, nil
}
