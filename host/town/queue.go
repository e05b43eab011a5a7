package town

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tags of in-flight elements: the first two bytes say which list the message
// came from, the rest is the message JSON exactly as it was in that list.
const (
	tagUrgent  = "u:"
	tagRegular = "n:"
)

// wakeTTL bounds how long a wake token outlives an agent nobody serves.
// Dropping a token is harmless: the worker's safety poll still finds the
// message.
const wakeTTL = time.Hour

// Entry is one in-flight message.
type Entry struct {
	Stored   string   // the exact in-flight element ("u:"/"n:" + Raw)
	Raw      string   // the message JSON as it was in the inbox or urgent list
	Urgent   bool     // it came from the urgent list
	Msg      *Message // nil when Raw did not parse
	ParseErr error    // why Raw did not parse (dead-letter it; never drop it)
}

// Source is "urgent" or "inbox": the list the message came from.
func (e Entry) Source() string {
	if e.Urgent {
		return "urgent"
	}
	return "inbox"
}

// DecodeEntry reads an in-flight element. It never fails: an element
// without a known tag (not written by tthost) is returned whole as a regular
// Raw with a ParseErr, so it can still be requeued or dead-lettered.
func DecodeEntry(stored string) Entry {
	e := Entry{Stored: stored}
	switch {
	case strings.HasPrefix(stored, tagUrgent):
		e.Urgent, e.Raw = true, stored[len(tagUrgent):]
	case strings.HasPrefix(stored, tagRegular):
		e.Raw = stored[len(tagRegular):]
	default:
		e.Raw = stored
		e.ParseErr = fmt.Errorf("%w: in-flight element without a u:/n: tag", ErrInvalidMessage)
		return e
	}
	e.Msg, e.ParseErr = ParseMessage(e.Raw)
	return e
}

func decodeEntries(stored []string) []Entry {
	out := make([]Entry, len(stored))
	for i, s := range stored {
		out[i] = DecodeEntry(s)
	}
	return out
}

// Send delivers msg to its recipient's inbox as tt does (high and urgent
// priority at the front, others at the back) and, in the same transaction,
// leaves a wake token so a waiting tthost worker starts at once.
func (s *Store) Send(ctx context.Context, msg *Message) error {
	raw, err := msg.Marshal()
	if err != nil {
		return err
	}
	key := s.keys.Inbox(msg.To)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if msg.Priority.Front() {
			p.LPush(ctx, key, raw)
		} else {
			p.RPush(ctx, key, raw)
		}
		s.queueWake(ctx, p, msg.To)
		return nil
	})
	if err != nil {
		return fmt.Errorf("send to %s: %w", msg.To, err)
	}
	return nil
}

// SendUrgent puts msg on its recipient's urgent list (LPUSH, like tt, whose
// priority field stays as it is) and wakes the recipient. tthost reads the
// urgent list from the other end, so urgent messages arrive oldest first.
func (s *Store) SendUrgent(ctx context.Context, msg *Message) error {
	raw, err := msg.Marshal()
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, s.keys.Urgent(msg.To), raw)
		s.queueWake(ctx, p, msg.To)
		return nil
	})
	if err != nil {
		return fmt.Errorf("send urgent to %s: %w", msg.To, err)
	}
	return nil
}

// queueWake adds the wake signal to a transaction: one token at most.
func (s *Store) queueWake(ctx context.Context, p redis.Pipeliner, agent string) {
	key := s.keys.Wake(agent)
	p.LPush(ctx, key, "1")
	p.LTrim(ctx, key, 0, 0)
	p.Expire(ctx, key, wakeTTL)
}

// Wake signals the agent's worker without a message (stop, interrupt,
// resume): its WaitWake returns and it re-reads its state.
func (s *Store) Wake(ctx context.Context, agent string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.queueWake(ctx, p, agent)
		return nil
	})
	if err != nil {
		return fmt.Errorf("wake %s: %w", agent, err)
	}
	return nil
}

// WaitWake blocks until the agent's wake token arrives (woken), timeout
// passes, or ctx ends. Tokens are hints: a wake may be spurious, and `tt`
// writes none, so the timeout is the worker's safety poll. A timeout under
// a second is passed to BLPOP as a fraction (Redis 6 and later); longer ones
// are rounded up to whole seconds. timeout <= 0 waits without limit.
//
// go-redis cannot cancel a blocked BLPOP, so when ctx ends first WaitWake
// pushes a token itself to release the connection, then returns ctx.Err().
// Each waiting agent holds one pooled connection while it waits.
func (s *Store) WaitWake(ctx context.Context, agent string, timeout time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := s.keys.Wake(agent)
	type result struct {
		woken bool
		err   error
	}
	done := make(chan result, 1)
	// The BLPOP runs without ctx's cancellation, which would make go-redis
	// drop a connection blocked in the server; bctx still ends retries
	// across an outage (OutageHook) once ctx is done.
	bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		var err error
		if timeout > 0 && timeout < time.Second {
			err = s.rdb.Do(bctx, "BLPOP", key, strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)).Err()
		} else {
			d := time.Duration(0)
			if timeout > 0 {
				d = (timeout + time.Second - 1) / time.Second * time.Second
			}
			err = s.rdb.BLPop(bctx, d, key).Err()
		}
		switch {
		case err == nil:
			done <- result{woken: true}
		case isNil(err):
			done <- result{}
		default:
			done <- result{err: fmt.Errorf("wait for wake of %s: %w", agent, err)}
		}
	}()
	select {
	case r := <-done:
		return r.woken, r.err
	case <-ctx.Done():
		stop()
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.Wake(uctx, agent)
		<-done
		return false, ctx.Err()
	}
}

// IntakeOptions tunes Intake.
type IntakeOptions struct {
	// UrgentOnly leaves the inbox alone (a running turn takes only urgent
	// messages; the regular ones wait for the next turn).
	UrgentOnly bool
	// Max bounds how many messages one call moves; 0 moves all.
	Max int
	// MaxBytes bounds the bytes (message JSON) one call moves; 0 means no
	// bound. The first message is always taken, however large, so an
	// oversized one cannot block the queue: the caller dead-letters it.
	MaxBytes int
	// Full always reads the stop flag and the agent's state, even when no
	// message waits. A caller that has just consumed the wake token with
	// WaitWake needs it: the token may have announced a pause.
	Full bool
}

// IntakeResult is what one Intake saw and did.
type IntakeResult struct {
	StopRequested bool
	// Quick is set when nothing was waiting (no wake token, stop flag or
	// message): the agent's hash was not read, so AgentExists, State and
	// RawState say nothing.
	Quick       bool
	AgentExists bool
	State       AgentState // parsed like tt: unknown reads as starting
	RawState    string     // the state field as stored ("" if missing)
	Moved       []Entry    // urgent ones first (oldest first), then the inbox in order
	// UrgentLeft and InboxLeft are what remains (Max or MaxBytes reached,
	// UrgentOnly).
	UrgentLeft int64
	InboxLeft  int64
	// BacklogLen is the town backlog's length, so an idle worker knows
	// whether a backlog snapshot is worth reading without another command.
	BacklogLen int64
}

// intakeScript is the only way a message leaves the inbox or urgent list:
// one atomic move into the in-flight list, so a crash at any point leaves
// every message either where it was or in flight, never nowhere.
//
// KEYS: lease, wake, stop, agent, urgent, inbox, inflight, backlog.
// ARGV: fence token, urgentOnly ("1"), max (0 = all), full ("1": no fast
// path), max bytes (0 = no bound).
// It consumes the wake token first, so a message that arrives after the
// script leaves a fresh token; it moves nothing when the stop flag exists,
// the agent hash is missing, or the agent is paused. With a fence token it
// moves nothing at all unless the lease still carries that token (checked
// after the fast path below, which moves nothing and so needs no fence).
//
// An idle agent's safety poll takes the fast path: one EXISTS over the wake
// token, the stop flag and both queues finds nothing, and the script returns
// without reading the agent (exists = -1, state unread). That keeps an idle
// agent at a few Redis commands per poll, script internals included.
var intakeScript = redis.NewScript(`
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[5], KEYS[6]) == 0 then
  return {0, -1, '', 0, 0, redis.call('LLEN', KEYS[8]), {}}
end
` + fenceCheck + `
redis.call('DEL', KEYS[2])
local stop = redis.call('EXISTS', KEYS[3])
local exists = redis.call('EXISTS', KEYS[4])
local state = redis.call('HGET', KEYS[4], 'state') or ''
local moved = {}
if stop == 0 and exists == 1 and state ~= 'paused' then
  local max, maxBytes, bytes = tonumber(ARGV[3]), tonumber(ARGV[5]), 0
  local function take(src, pop, at, tag)
    while max == 0 or #moved < max do
      if maxBytes > 0 and #moved > 0 then
        local peek = redis.call('LINDEX', src, at)
        if not peek then return end
        if bytes + #peek > maxBytes then return end
      end
      local m = redis.call(pop, src)
      if not m then return end
      bytes = bytes + #m
      local e = tag .. m
      redis.call('RPUSH', KEYS[7], e)
      moved[#moved + 1] = e
    end
  end
  take(KEYS[5], 'RPOP', -1, 'u:')
  if ARGV[2] ~= '1' then take(KEYS[6], 'LPOP', 0, 'n:') end
end
return {stop, exists, state, redis.call('LLEN', KEYS[5]), redis.call('LLEN', KEYS[6]),
  redis.call('LLEN', KEYS[8]), moved}
`)

// Intake moves the agent's waiting messages into its in-flight list in one
// round trip: urgent messages oldest first (tt LPUSHes urgent messages, so
// reading from the other end fixes tt's LIFO order), then, unless
// UrgentOnly, the inbox in order, up to Max messages and MaxBytes bytes.
// Nothing moves while the stop flag is set, the agent is paused, or its
// hash is missing. Intake consumes the wake token: call it again before
// waiting whenever something was left behind. It is unfenced: a worker
// holding the agent's lease uses Worker.Intake.
func (s *Store) Intake(ctx context.Context, agent string, opts IntakeOptions) (IntakeResult, error) {
	return s.intake(ctx, agent, "", opts)
}

func (s *Store) intake(ctx context.Context, agent, fence string, opts IntakeOptions) (IntakeResult, error) {
	k := s.keys
	urgentOnly := "0"
	if opts.UrgentOnly {
		urgentOnly = "1"
	}
	full := "0"
	if opts.Full {
		full = "1"
	}
	v, err := intakeScript.Run(ctx, s.rdb,
		[]string{k.Lease(agent), k.Wake(agent), k.Stop(agent), k.Agent(agent), k.Urgent(agent), k.Inbox(agent),
			k.InFlight(agent), k.Backlog()},
		fence, urgentOnly, max(opts.Max, 0), full, max(opts.MaxBytes, 0)).Slice()
	if err != nil {
		return IntakeResult{}, fenceErr("intake for "+agent, err)
	}
	if len(v) != 7 {
		return IntakeResult{}, fmt.Errorf("intake for %s: unexpected reply %v", agent, v)
	}
	stop, _ := v[0].(int64)
	exists, _ := v[1].(int64)
	raw, _ := v[2].(string)
	uLeft, _ := v[3].(int64)
	iLeft, _ := v[4].(int64)
	backlog, _ := v[5].(int64)
	list, _ := v[6].([]any)
	res := IntakeResult{StopRequested: stop == 1, Quick: exists == -1, AgentExists: exists == 1, RawState: raw,
		UrgentLeft: uLeft, InboxLeft: iLeft, BacklogLen: backlog}
	res.State, _ = ParseAgentState(raw)
	for _, x := range list {
		str, ok := x.(string)
		if !ok {
			return res, fmt.Errorf("intake for %s: unexpected element %T", agent, x)
		}
		res.Moved = append(res.Moved, DecodeEntry(str))
	}
	return res, nil
}

// InFlight lists the agent's in-flight messages in delivery order. A worker
// that restarts delivers these again before anything new.
func (s *Store) InFlight(ctx context.Context, agent string) ([]Entry, error) {
	l, err := s.rdb.LRange(ctx, s.keys.InFlight(agent), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("in-flight of %s: %w", agent, err)
	}
	return decodeEntries(l), nil
}

// ackScript removes in-flight elements, each once (LREM count 1).
// KEYS: lease, inflight. ARGV: fence token, elements.
var ackScript = redis.NewScript(fenceCheck + `
for i = 2, #ARGV do redis.call('LREM', KEYS[2], 1, ARGV[i]) end
return 0
`)

// Ack ends these messages' lives: their turn had an outcome. Each element is
// removed once (LREM count 1), atomically. Unfenced; see Worker.Ack.
func (s *Store) Ack(ctx context.Context, agent string, entries ...Entry) error {
	return s.ack(ctx, agent, "", entries)
}

func (s *Store) ack(ctx context.Context, agent, fence string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	args := make([]any, 0, len(entries)+1)
	args = append(args, fence)
	for _, e := range entries {
		args = append(args, e.Stored)
	}
	err := ackScript.Run(ctx, s.rdb, []string{s.keys.Lease(agent), s.keys.InFlight(agent)}, args...).Err()
	if err != nil && !isNil(err) {
		return fenceErr("ack for "+agent, err)
	}
	return nil
}

// requeueScript moves in-flight elements back so they are delivered first
// and in their original order: regular ones to the inbox front, urgent ones
// to the urgent list's read end (the right). Elements no longer in flight
// (already acked or requeued) are skipped, so a requeue never duplicates.
// KEYS: lease, inflight, inbox, urgent, wake. ARGV: fence token, stored
// elements in order. The wake token's 3600 s TTL is wakeTTL.
var requeueScript = redis.NewScript(fenceCheck + `
local regular, urgent = {}, {}
for i = 2, #ARGV do
  local e = ARGV[i]
  if redis.call('LREM', KEYS[2], 1, e) == 1 then
    local tag = string.sub(e, 1, 2)
    if tag == 'u:' then urgent[#urgent + 1] = string.sub(e, 3)
    elseif tag == 'n:' then regular[#regular + 1] = string.sub(e, 3)
    else regular[#regular + 1] = e end
  end
end
for i = #regular, 1, -1 do redis.call('LPUSH', KEYS[3], regular[i]) end
for i = #urgent, 1, -1 do redis.call('RPUSH', KEYS[4], urgent[i]) end
local n = #regular + #urgent
if n > 0 then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, 0)
  redis.call('EXPIRE', KEYS[5], 3600)
end
return n
`)

// Requeue gives messages back, atomically: they leave the in-flight list and
// are delivered first, in the order given (pass them in delivery order, as
// Intake and InFlight return them), with their exact original bytes. tt
// instead re-sends behind newer traffic and reverses urgent order
// (docs/compatibility.md#d10).
// Messages that were never in Redis (a synthetic backlog query) must not be
// passed: they have no in-flight element and would be skipped anyway.
// It returns how many were requeued and signals the wake list. Unfenced;
// see Worker.Requeue.
func (s *Store) Requeue(ctx context.Context, agent string, entries ...Entry) (int, error) {
	return s.requeue(ctx, agent, "", entries)
}

func (s *Store) requeue(ctx context.Context, agent, fence string, entries []Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	k := s.keys
	args := make([]any, 0, len(entries)+1)
	args = append(args, fence)
	for _, e := range entries {
		args = append(args, e.Stored)
	}
	n, err := requeueScript.Run(ctx, s.rdb,
		[]string{k.Lease(agent), k.InFlight(agent), k.Inbox(agent), k.Urgent(agent), k.Wake(agent)}, args...).Int()
	if err != nil {
		return 0, fenceErr("requeue for "+agent, err)
	}
	return n, nil
}

// DeadLetter is one record of the agent's dead-letter list.
type DeadLetter struct {
	Raw    string    `json:"raw"`    // the message JSON as it was delivered
	Error  string    `json:"error"`  // why it could not be handled
	Source string    `json:"source"` // "inbox" or "urgent"
	At     time.Time `json:"at"`
	Stored string    `json:"-"` // the list element itself
}

// deadLetterScript moves one element from in-flight to the dead-letter list.
// KEYS: lease, inflight, deadletter. ARGV: fence token, element, record.
var deadLetterScript = redis.NewScript(fenceCheck + `
if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 0 then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
`)

// DeadLetter takes a message that cannot be handled (it does not parse, or
// it failed too often) out of flight and records it with its raw bytes and
// reason, atomically: a bad message is never dropped silently. It fails with
// ErrNotInFlight when the element is no longer in flight. Unfenced; see
// Worker.DeadLetter.
func (s *Store) DeadLetter(ctx context.Context, agent string, e Entry, reason string) error {
	return s.deadLetter(ctx, agent, "", e, reason)
}

func (s *Store) deadLetter(ctx context.Context, agent, fence string, e Entry, reason string) error {
	rec := make([]byte, 0, len(e.Raw)+len(reason)+96)
	rec = append(rec, '{')
	rec = appendStringField(rec, "raw", e.Raw)
	rec = appendStringField(rec, "error", reason)
	rec = appendStringField(rec, "source", e.Source())
	rec = appendStringField(rec, "at", FormatJSONTime(s.nowUTC()))
	rec = append(rec, '}')
	n, err := deadLetterScript.Run(ctx, s.rdb,
		[]string{s.keys.Lease(agent), s.keys.InFlight(agent), s.keys.DeadLetter(agent)}, fence, e.Stored, rec).Int()
	if err != nil {
		return fenceErr("dead-letter for "+agent, err)
	}
	if n == 0 {
		return fmt.Errorf("dead-letter for %s: %w", agent, ErrNotInFlight)
	}
	return nil
}

// DeadLetters lists the agent's dead letters, oldest first. A record that
// is not valid JSON is returned with its text as Raw and an explanation.
func (s *Store) DeadLetters(ctx context.Context, agent string) ([]DeadLetter, error) {
	l, err := s.rdb.LRange(ctx, s.keys.DeadLetter(agent), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", agent, err)
	}
	out := make([]DeadLetter, len(l))
	for i, item := range l {
		var rec struct {
			Raw, Error, Source, At string
		}
		if err := json.Unmarshal([]byte(item), &rec); err != nil {
			out[i] = DeadLetter{Raw: item, Error: "unreadable dead-letter record: " + err.Error(), Stored: item}
			continue
		}
		at, _ := ParseTime(rec.At)
		out[i] = DeadLetter{Raw: rec.Raw, Error: rec.Error, Source: rec.Source, At: at, Stored: item}
	}
	return out, nil
}

// PeekInbox returns up to n messages from the front of the inbox without
// consuming them (what `tt inbox` shows). Elements that do not parse are
// skipped, as in tt, but counted in bad.
func (s *Store) PeekInbox(ctx context.Context, agent string, n int) (msgs []*Message, bad int, err error) {
	return s.peek(ctx, s.keys.Inbox(agent), n, false)
}

// PeekUrgent is PeekInbox for the urgent list, in delivery (oldest-first) order.
func (s *Store) PeekUrgent(ctx context.Context, agent string, n int) (msgs []*Message, bad int, err error) {
	return s.peek(ctx, s.keys.Urgent(agent), n, true)
}

func (s *Store) peek(ctx context.Context, key string, n int, fromRight bool) ([]*Message, int, error) {
	if n <= 0 {
		return nil, 0, nil
	}
	start, stop := int64(0), int64(n-1)
	if fromRight {
		start, stop = int64(-n), -1
	}
	l, err := s.rdb.LRange(ctx, key, start, stop).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("peek %s: %w", key, err)
	}
	if fromRight {
		for i, j := 0, len(l)-1; i < j; i, j = i+1, j-1 {
			l[i], l[j] = l[j], l[i]
		}
	}
	var msgs []*Message
	bad := 0
	for _, raw := range l {
		m, err := ParseMessage(raw)
		if err != nil {
			bad++
			continue
		}
		msgs = append(msgs, m)
	}
	return msgs, bad, nil
}

// InboxLen, UrgentLen and InFlightLen are the list lengths (LLEN).
func (s *Store) InboxLen(ctx context.Context, agent string) (int64, error) {
	return s.rdb.LLen(ctx, s.keys.Inbox(agent)).Result()
}

func (s *Store) UrgentLen(ctx context.Context, agent string) (int64, error) {
	return s.rdb.LLen(ctx, s.keys.Urgent(agent)).Result()
}

func (s *Store) InFlightLen(ctx context.Context, agent string) (int64, error) {
	return s.rdb.LLen(ctx, s.keys.InFlight(agent)).Result()
}
