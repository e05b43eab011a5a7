package town

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// raws returns the Raw of each entry.
func raws(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Raw
	}
	return out
}

func mustRaw(t *testing.T, m *Message) string {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIntakeTakesUrgentOldestFirstThenTheInboxInOrder(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	// tt's writers: LPUSH urgent, RPUSH inbox (normal priority).
	tt := f.client()
	u1, u2 := mustRaw(t, NewTask(SupervisorID, a.ID, "urgent 1")), mustRaw(t, NewTask(SupervisorID, a.ID, "urgent 2"))
	n1, n2 := mustRaw(t, NewTask(SupervisorID, a.ID, "normal 1")), mustRaw(t, NewTask(SupervisorID, a.ID, "normal 2"))
	k := f.store.Keys()
	f.must(tt.LPush(f.ctx, k.Urgent(a.ID), u1).Err())
	f.must(tt.RPush(f.ctx, k.Inbox(a.ID), n1).Err())
	f.must(tt.LPush(f.ctx, k.Urgent(a.ID), u2).Err())
	f.must(tt.RPush(f.ctx, k.Inbox(a.ID), n2).Err())

	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if !reflect.DeepEqual(raws(res.Moved), []string{u1, u2, n1, n2}) {
		t.Fatalf("order: %v", raws(res.Moved))
	}
	for i, e := range res.Moved {
		if e.Urgent != (i < 2) || e.Msg == nil || e.ParseErr != nil {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	if !res.AgentExists || res.StopRequested || res.State != StateStarting || res.UrgentLeft != 0 || res.InboxLeft != 0 || res.BacklogLen != 0 {
		t.Errorf("result: %+v", res)
	}
	// Everything is in flight, tagged, in delivery order; the lists are empty.
	inflight, err := f.rdb.LRange(f.ctx, k.InFlight(a.ID), 0, -1).Result()
	f.must(err)
	if !reflect.DeepEqual(inflight, []string{"u:" + u1, "u:" + u2, "n:" + n1, "n:" + n2}) {
		t.Fatalf("in-flight list: %v", inflight)
	}
	if n, _ := f.store.InboxLen(f.ctx, a.ID); n != 0 {
		t.Error("inbox not empty")
	}
	if n, _ := f.store.UrgentLen(f.ctx, a.ID); n != 0 {
		t.Error("urgent not empty")
	}
	// Nothing left: a second intake moves nothing.
	res, err = f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 0 {
		t.Errorf("second intake moved %d", len(res.Moved))
	}
}

func TestSendUsesTTsListEnds(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	normal := NewTask(SupervisorID, a.ID, "normal")
	high := NewTask(SupervisorID, a.ID, "high")
	high.Priority = PriorityHigh
	low := NewTask(SupervisorID, a.ID, "low")
	low.Priority = PriorityLow
	urgentPrio := NewTask(SupervisorID, a.ID, "urgent priority")
	urgentPrio.Priority = PriorityUrgent
	for _, m := range []*Message{normal, high, low, urgentPrio} {
		f.must(f.store.Send(f.ctx, m))
	}
	viaUrgent := NewTask(SupervisorID, a.ID, "urgent list")
	f.must(f.store.SendUrgent(f.ctx, viaUrgent))

	inbox, _ := f.rdb.LRange(f.ctx, f.store.Keys().Inbox(a.ID), 0, -1).Result()
	want := []string{mustRaw(t, urgentPrio), mustRaw(t, high), mustRaw(t, normal), mustRaw(t, low)}
	if !reflect.DeepEqual(inbox, want) {
		t.Fatalf("inbox:\n%v\nwant\n%v", inbox, want)
	}
	urgent, _ := f.rdb.LRange(f.ctx, f.store.Keys().Urgent(a.ID), 0, -1).Result()
	if len(urgent) != 1 || !strings.Contains(urgent[0], `"priority":"normal"`) {
		t.Fatalf("urgent list keeps the priority field: %v", urgent)
	}
	// One wake token at most, whatever the number of sends.
	if n, _ := f.rdb.LLen(f.ctx, f.store.Keys().Wake(a.ID)).Result(); n != 1 {
		t.Fatalf("wake tokens: %d", n)
	}
	if ttl, _ := f.rdb.TTL(f.ctx, f.store.Keys().Wake(a.ID)).Result(); ttl <= 0 {
		t.Fatalf("wake token has no TTL: %v", ttl)
	}
	msgs, bad, err := f.store.PeekInbox(f.ctx, a.ID, 2)
	f.must(err)
	if bad != 0 || len(msgs) != 2 || msgs[0].Description != "urgent priority" {
		t.Fatalf("peek: %v %d", msgs, bad)
	}
	if err := f.store.Send(f.ctx, &Message{To: a.ID}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("invalid message sent: %v", err)
	}
}

func TestIntakeMovesNothingWhenStoppedPausedOrGone(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	f.must(f.store.Send(f.ctx, NewTask(SupervisorID, a.ID, "x")))
	f.must(f.store.SendUrgent(f.ctx, NewTask(SupervisorID, a.ID, "y")))

	f.must(f.store.SetAgentState(f.ctx, a.ID, StatePaused))
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 0 || res.State != StatePaused || res.UrgentLeft != 1 || res.InboxLeft != 1 {
		t.Fatalf("paused: %+v", res)
	}

	f.must(f.store.SetAgentState(f.ctx, a.ID, StateIdle))
	f.must(f.store.RequestStop(f.ctx, a.ID))
	res, err = f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 0 || !res.StopRequested || res.State != StateIdle {
		t.Fatalf("stopped: %+v", res)
	}
	f.must(f.store.ClearStop(f.ctx, a.ID))

	f.must(f.rdb.Del(f.ctx, f.store.Keys().Agent(a.ID)).Err())
	res, err = f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 0 || res.AgentExists {
		t.Fatalf("gone: %+v", res)
	}
	if n, _ := f.store.InFlightLen(f.ctx, a.ID); n != 0 {
		t.Fatal("something moved")
	}
}

func TestIntakeUrgentOnlyAndMax(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	for i := 0; i < 3; i++ {
		f.must(f.store.Send(f.ctx, NewTask(SupervisorID, a.ID, "n")))
		f.must(f.store.SendUrgent(f.ctx, NewTask(SupervisorID, a.ID, "u")))
	}
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{UrgentOnly: true})
	f.must(err)
	if len(res.Moved) != 3 || res.InboxLeft != 3 || res.UrgentLeft != 0 {
		t.Fatalf("urgent only: %d moved, %+v", len(res.Moved), res)
	}
	_, err = f.store.BacklogAdd(f.ctx, "later", nil)
	f.must(err)
	res, err = f.store.Intake(f.ctx, a.ID, IntakeOptions{Max: 2})
	f.must(err)
	if len(res.Moved) != 2 || res.InboxLeft != 1 || res.BacklogLen != 1 {
		t.Fatalf("max: %d moved, %+v", len(res.Moved), res)
	}
}

func TestACrashBetweenIntakeAndAckLeavesMessagesInFlight(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	m1, m2 := NewTask(SupervisorID, a.ID, "one"), NewTask(SupervisorID, a.ID, "two")
	f.must(f.store.Send(f.ctx, m1))
	f.must(f.store.SendUrgent(f.ctx, m2))
	first, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)

	// The worker dies here. A new worker (another connection) finds them.
	restarted := New(f.client(), testTown)
	again, err := restarted.InFlight(f.ctx, a.ID)
	f.must(err)
	if !reflect.DeepEqual(again, first.Moved) {
		t.Fatalf("in flight after restart:\n%+v\nwant\n%+v", again, first.Moved)
	}
	if again[0].Msg.ID != m2.ID || !again[0].Urgent || again[1].Msg.ID != m1.ID {
		t.Fatalf("entries: %+v", again)
	}
	// The turn completes: ack removes exactly those elements.
	f.must(restarted.Ack(f.ctx, a.ID, again...))
	if n, _ := f.store.InFlightLen(f.ctx, a.ID); n != 0 {
		t.Fatalf("in flight after ack: %d", n)
	}
}

func TestAckRemovesOneCopyOfEachElement(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	m := NewTask(SupervisorID, a.ID, "dup")
	f.must(f.store.Send(f.ctx, m))
	f.must(f.store.Send(f.ctx, m)) // the same bytes twice
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	f.must(f.store.Ack(f.ctx, a.ID, res.Moved[0]))
	if n, _ := f.store.InFlightLen(f.ctx, a.ID); n != 1 {
		t.Fatalf("in flight: %d, want 1", n)
	}
}

func TestRequeueRestoresTheOriginalOrderAtTheFront(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	var sent []*Message
	for _, d := range []string{"u1", "u2"} {
		m := NewTask(SupervisorID, a.ID, d)
		sent = append(sent, m)
		f.must(f.store.SendUrgent(f.ctx, m))
	}
	for _, d := range []string{"n1", "n2", "n3"} {
		m := NewTask(SupervisorID, a.ID, d)
		sent = append(sent, m)
		f.must(f.store.Send(f.ctx, m))
	}
	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	// Newer traffic arrives while the turn runs.
	newer, newerUrgent := NewTask(SupervisorID, a.ID, "newer"), NewTask(SupervisorID, a.ID, "newer urgent")
	f.must(f.store.Send(f.ctx, newer))
	f.must(f.store.SendUrgent(f.ctx, newerUrgent))
	f.must(f.rdb.Del(f.ctx, f.store.Keys().Wake(a.ID)).Err())

	n, err := f.store.Requeue(f.ctx, a.ID, res.Moved...)
	f.must(err)
	if n != 5 {
		t.Fatalf("requeued %d", n)
	}
	if l, _ := f.rdb.LLen(f.ctx, f.store.Keys().Wake(a.ID)).Result(); l != 1 {
		t.Fatal("requeue did not wake the agent")
	}
	// Requeueing again does nothing: they are no longer in flight.
	if n, _ := f.store.Requeue(f.ctx, a.ID, res.Moved...); n != 0 {
		t.Fatalf("second requeue: %d", n)
	}
	again, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	r := func(m *Message) string { return mustRaw(t, m) }
	// The requeued ones first, in their original order, then the newer ones.
	want := []string{r(sent[0]), r(sent[1]), r(newerUrgent), r(sent[2]), r(sent[3]), r(sent[4]), r(newer)}
	if !reflect.DeepEqual(raws(again.Moved), want) {
		t.Fatalf("after requeue:\n%v\nwant\n%v", strings.Join(raws(again.Moved), "\n"), strings.Join(want, "\n"))
	}
	// Exact bytes come back, even bytes tthost would not write itself.
	odd := `{"extra":1,"id":"` + NewID() + `","from":"` + SupervisorID + `","to":"` + a.ID +
		`","type":"ping","priority":"normal","created_at":"2026-04-23T22:40:01+02:00"}`
	f.must(f.store.Ack(f.ctx, a.ID, again.Moved...))
	f.must(f.rdb.RPush(f.ctx, f.store.Keys().Inbox(a.ID), odd).Err())
	res, err = f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	_, err = f.store.Requeue(f.ctx, a.ID, res.Moved...)
	f.must(err)
	if got, _ := f.rdb.LIndex(f.ctx, f.store.Keys().Inbox(a.ID), 0).Result(); got != odd {
		t.Fatalf("bytes changed: %s", got)
	}
}

func TestBadMessagesAreDeadLetteredWithTheirBytes(t *testing.T) {
	f := newFixture(t)
	f.store = New(f.rdb, testTown, WithClock(func() time.Time { return fixedNow }))
	a := f.agent("w")
	good := NewTask(SupervisorID, a.ID, "fine")
	f.must(f.store.Send(f.ctx, good))
	bad := `{"id":"x","type":"task","priority":"Normal"}`
	f.must(f.rdb.RPush(f.ctx, f.store.Keys().Inbox(a.ID), bad).Err())
	badUrgent := `not json at all`
	f.must(f.rdb.LPush(f.ctx, f.store.Keys().Urgent(a.ID), badUrgent).Err())

	msgs, unparseable, err := f.store.PeekInbox(f.ctx, a.ID, 100)
	f.must(err)
	if len(msgs) != 1 || unparseable != 1 {
		t.Fatalf("peek: %d parsed, %d bad", len(msgs), unparseable)
	}

	res, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 3 {
		t.Fatalf("moved %d: a bad message must move too", len(res.Moved))
	}
	for _, e := range res.Moved {
		if e.Msg != nil {
			continue
		}
		if !errors.Is(e.ParseErr, ErrInvalidMessage) {
			t.Fatalf("parse error: %v", e.ParseErr)
		}
		f.must(f.store.DeadLetter(f.ctx, a.ID, e, e.ParseErr.Error()))
		if err := f.store.DeadLetter(f.ctx, a.ID, e, "again"); !errors.Is(err, ErrNotInFlight) {
			t.Fatalf("second dead-letter: %v", err)
		}
	}
	dls, err := f.store.DeadLetters(f.ctx, a.ID)
	f.must(err)
	if len(dls) != 2 || dls[0].Raw != badUrgent || dls[0].Source != "urgent" ||
		dls[1].Raw != bad || dls[1].Source != "inbox" || !dls[1].At.Equal(fixedNow) || dls[1].Error == "" {
		t.Fatalf("dead letters: %+v", dls)
	}
	// The record is JSON with the documented fields.
	var rec map[string]string
	f.must(json.Unmarshal([]byte(dls[1].Stored), &rec))
	if rec["raw"] != bad || rec["source"] != "inbox" || rec["at"] != "2026-04-23T22:32:34.123456789Z" {
		t.Fatalf("record: %v", rec)
	}
	if left, _ := f.store.InFlight(f.ctx, a.ID); len(left) != 1 || left[0].Msg.ID != good.ID {
		t.Fatalf("left in flight: %+v", left)
	}
}

func TestWaitWakeReturnsWhenAnotherClientSends(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	type result struct {
		woken bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		woken, err := f.store.WaitWake(f.ctx, a.ID, time.Hour)
		done <- result{woken, err}
	}()
	f.waitBlocked(1)
	sender := New(f.client(), testTown)
	f.must(sender.Send(f.ctx, NewTask(SupervisorID, a.ID, "wake up")))
	select {
	case r := <-done:
		if !r.woken || r.err != nil {
			t.Fatalf("WaitWake = %v, %v", r.woken, r.err)
		}
	case <-f.ctx.Done():
		t.Fatal("WaitWake did not return after Send")
	}
	// Intake consumes the token so the next wait blocks again.
	f.must(f.store.Wake(f.ctx, a.ID))
	_, err := f.store.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if n, _ := f.rdb.Exists(f.ctx, f.store.Keys().Wake(a.ID)).Result(); n != 0 {
		t.Fatal("intake left the wake token")
	}
}

func TestWaitWakeEndsWithItsContextOrTimeout(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := f.store.WaitWake(ctx, a.ID, 0)
		done <- err
	}()
	f.waitBlocked(1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-f.ctx.Done():
		t.Fatal("WaitWake ignored cancellation")
	}
	f.waitBlocked(0) // the BLPOP was released, not abandoned

	woken, err := f.store.WaitWake(f.ctx, NewID(), time.Millisecond) // rounds up to 1 s
	if woken || err != nil {
		t.Fatalf("timeout: %v %v", woken, err)
	}
}

// waitBlocked waits until the server reports n clients blocked in a
// command (the observable event that a BLPOP is waiting).
func (f *fixture) waitBlocked(n int) {
	f.t.Helper()
	want := "blocked_clients:" + strconv.Itoa(n)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		info, err := f.rdb.Info(f.ctx, "clients").Result()
		f.must(err)
		if strings.Contains(info, want+"\r\n") {
			return
		}
		select {
		case <-tick.C:
		case <-f.ctx.Done():
			f.t.Fatalf("never saw %s:\n%s", want, info)
		}
	}
}

func FuzzIntakeEntry(f *testing.F) {
	f.Add("u:" + refMessages[0])
	f.Add("n:" + refMessages[3])
	f.Add("n:")
	f.Add("u:not json")
	f.Add(refMessages[1])
	f.Add("x:{}")
	f.Fuzz(func(t *testing.T, stored string) {
		e := DecodeEntry(stored)
		if e.Stored != stored {
			t.Fatal("Stored changed")
		}
		switch {
		case strings.HasPrefix(stored, "u:"):
			if !e.Urgent || "u:"+e.Raw != stored {
				t.Fatalf("urgent entry: %+v", e)
			}
		case strings.HasPrefix(stored, "n:"):
			if e.Urgent || "n:"+e.Raw != stored {
				t.Fatalf("regular entry: %+v", e)
			}
		default:
			if e.Urgent || e.Raw != stored || e.ParseErr == nil {
				t.Fatalf("untagged entry: %+v", e)
			}
		}
		if (e.Msg == nil) == (e.ParseErr == nil) {
			t.Fatalf("exactly one of Msg and ParseErr must be set: %+v", e)
		}
		if e.Msg != nil && e.Msg.Raw != e.Raw {
			t.Fatal("message Raw differs from entry Raw")
		}
	})
}

// countHook counts the commands a client sends (pipelines count each).
type countHook struct {
	mu   sync.Mutex
	cmds []string
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.cmds = append(h.cmds, cmd.Name())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		for _, c := range cmds {
			h.cmds = append(h.cmds, c.Name())
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *countHook) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.cmds
	h.cmds = nil
	return out
}

func TestAnIdlePollIsOneCommandAndSurvivesAScriptFlush(t *testing.T) {
	f := newFixture(t)
	a := f.agent("w")
	c := f.client()
	hook := &countHook{}
	c.AddHook(hook)
	s := New(c, testTown)
	f.must(s.Preload(f.ctx))
	hook.take()

	res, err := s.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if got := hook.take(); len(res.Moved) != 0 || !reflect.DeepEqual(got, []string{"evalsha"}) {
		t.Fatalf("idle poll sent %v", got)
	}
	// A server that lost its scripts still works (EVAL fallback).
	f.must(f.rdb.ScriptFlush(f.ctx).Err())
	f.must(s.Send(f.ctx, NewTask(SupervisorID, a.ID, "x")))
	res, err = s.Intake(f.ctx, a.ID, IntakeOptions{})
	f.must(err)
	if len(res.Moved) != 1 {
		t.Fatalf("moved %d after SCRIPT FLUSH", len(res.Moved))
	}
}
