package plugin

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
)

// testLog returns an event log whose timer never fires during a test
// unless the test asks for it, so coalescing is decided by the events
// alone.
func testLog(flushBytes int) *eventLog {
	l := newEventLog("s-test")
	l.flushBytes = flushBytes
	l.flushDelay = time.Hour
	return l
}

// committed returns every event the log holds.
func committed(t *testing.T, l *eventLog) []sdk.Event {
	t.Helper()
	evs, _, _, err := l.since(0, 1<<30)
	if err != nil {
		t.Fatalf("since(0): %v", err)
	}
	return evs
}

// shape renders events as "kind:turn:text" for compact comparisons.
func shape(evs []sdk.Event) []string {
	var out []string
	for _, e := range evs {
		s := string(e.Kind) + ":" + e.TurnID
		if e.Kind == sdk.EventAssistantDelta {
			s += ":" + e.Text
		}
		out = append(out, s)
	}
	return out
}

func TestEmitNumbersAndStampsEvents(t *testing.T) {
	l := testLog(deltaFlushBytes)
	before := time.Now()
	l.Emit(sdk.SessionReadyEvent(sdk.SessionReady{}))
	l.Emit(sdk.Event{Kind: sdk.EventTurnStarted, TurnID: "t1", Seq: 99, SessionID: "forged"})
	l.Emit(sdk.AwaitingInputEvent())
	evs := committed(t, l)
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d, want %d", i, e.Seq, i+1)
		}
		if e.SessionID != "s-test" {
			t.Errorf("event %d has session %q, want the log's", i, e.SessionID)
		}
		if e.Time.Before(before) || e.Time.After(time.Now()) {
			t.Errorf("event %d has time %v, not the time of Emit", i, e.Time)
		}
	}
}

func TestDeltaCoalescing(t *testing.T) {
	d := func(turn, text string) sdk.Event { return sdk.DeltaEvent(turn, text) }
	cases := []struct {
		name       string
		flushBytes int
		emit       []sdk.Event
		want       []string
	}{
		{
			name:       "consecutive deltas of a turn become one event",
			flushBytes: 4096,
			emit:       []sdk.Event{d("t1", "a"), d("t1", "b"), d("t1", "c"), sdk.TurnCompletedEvent("t1", sdk.TurnCompleted{})},
			want:       []string{"assistant_delta:t1:abc", "turn_completed:t1"},
		},
		{
			name:       "a delta of another turn flushes the pending text first",
			flushBytes: 4096,
			emit:       []sdk.Event{d("t1", "a"), d("t2", "b"), sdk.ExitedEvent(sdk.ExitInfo{})},
			want:       []string{"assistant_delta:t1:a", "assistant_delta:t2:b", "exited:"},
		},
		{
			name:       "any other event flushes pending text before itself",
			flushBytes: 4096,
			emit:       []sdk.Event{d("t1", "a"), d("t1", "b"), sdk.ToolCallEvent("t1", sdk.ToolCall{}), d("t1", "c"), sdk.ExitedEvent(sdk.ExitInfo{})},
			want:       []string{"assistant_delta:t1:ab", "tool_call:t1", "assistant_delta:t1:c", "exited:"},
		},
		{
			name:       "pending text is flushed when it reaches the size limit",
			flushBytes: 4,
			emit:       []sdk.Event{d("t1", "ab"), d("t1", "cd"), d("t1", "e")},
			want:       []string{"assistant_delta:t1:abcd"},
		},
		{
			name:       "Exited flushes pending text and ends the log",
			flushBytes: 4096,
			emit:       []sdk.Event{d("t1", "a"), sdk.ExitedEvent(sdk.ExitInfo{}), d("t1", "late"), sdk.AwaitingInputEvent()},
			want:       []string{"assistant_delta:t1:a", "exited:"},
		},
		{
			name:       "empty deltas are dropped",
			flushBytes: 4096,
			emit:       []sdk.Event{d("t1", ""), sdk.AwaitingInputEvent()},
			want:       []string{"awaiting_input:"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := testLog(tc.flushBytes)
			for _, e := range tc.emit {
				l.Emit(e)
			}
			got := shape(committed(t, l))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("committed %q\nwant      %q", got, tc.want)
			}
		})
	}
}

func TestPendingDeltaIsFlushedByTimer(t *testing.T) {
	l := newEventLog("s-test")
	l.flushDelay = 20 * time.Millisecond
	l.Emit(sdk.DeltaEvent("t1", "hel"))
	l.Emit(sdk.DeltaEvent("t1", "lo"))
	evs, wake, _, err := l.since(0, 10)
	if err != nil || len(evs) != 0 {
		t.Fatalf("right after Emit: %d events, err %v; want the text still pending", len(evs), err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("the pending delta was not flushed by the timer")
	}
	if got := shape(committed(t, l)); len(got) != 1 || got[0] != "assistant_delta:t1:hello" {
		t.Errorf("after the timer: %q, want one delta \"hello\"", got)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	l := testLog(deltaFlushBytes)
	l.history = 4
	for range 10 {
		l.Emit(sdk.ToolCallEvent("", sdk.ToolCall{}))
	}
	cases := []struct {
		name    string
		after   uint64
		wantErr error
		first   uint64
		n       int
	}{
		{name: "events older than the history are gone", after: 0, wantErr: errHistoryGone},
		{name: "the oldest kept event can be replayed", after: 6, first: 7, n: 4},
		{name: "a subscriber at the end gets nothing yet", after: 10, n: 0},
		{name: "a seq never emitted is refused", after: 11, wantErr: errSeqAhead},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, _, _, err := l.since(tc.after, 100)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("since(%d) error %v, want %v", tc.after, err, tc.wantErr)
			}
			if len(evs) != tc.n {
				t.Fatalf("since(%d) returned %d events, want %d", tc.after, len(evs), tc.n)
			}
			for i, e := range evs {
				if e.Seq != tc.first+uint64(i) {
					t.Errorf("event %d has seq %d, want %d", i, e.Seq, tc.first+uint64(i))
				}
			}
		})
	}
}

func TestSinceReportsDoneAfterExited(t *testing.T) {
	l := testLog(deltaFlushBytes)
	l.Emit(sdk.AwaitingInputEvent())
	if evs, _, done, _ := l.since(1, 10); len(evs) != 0 || done {
		t.Fatalf("before Exited: %d events, done %v; want none and not done", len(evs), done)
	}
	l.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
	if evs, _, done, _ := l.since(1, 10); len(evs) != 1 || !done {
		t.Fatalf("reading Exited: %d events, done %v; want Exited and done", len(evs), done)
	}
	if evs, _, done, _ := l.since(2, 10); len(evs) != 0 || !done {
		t.Fatalf("after Exited: %d events, done %v; want none and done", len(evs), done)
	}
}

func TestConcurrentEmitsGetGaplessSeqs(t *testing.T) {
	l := testLog(64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if i%3 == 0 {
					l.Emit(sdk.ToolCallEvent("", sdk.ToolCall{}))
				} else {
					l.Emit(sdk.DeltaEvent(string(rune('a'+g)), "x"))
				}
			}
		})
	}
	wg.Wait()
	l.Emit(sdk.ExitedEvent(sdk.ExitInfo{}))
	evs := committed(t, l)
	text := 0
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: a gap", i, e.Seq)
		}
		text += len(e.Text)
	}
	if want := 8 * (500 - 167); text != want {
		t.Errorf("delta text totals %d bytes, want %d: text was lost or duplicated", text, want)
	}
}
