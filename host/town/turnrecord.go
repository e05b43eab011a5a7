package town

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// SessionRecord is where an agent's worker stands in its backend session,
// kept so that a successor process that reattaches to the same plugin
// session (a host restart or upgrade) continues exactly where the
// predecessor stopped: it re-subscribes to the session's events after Seq,
// and adopts the running turn Turn instead of delivering its messages
// again. It is tthost's own record (Keys.SessionRecord), which tt never
// reads; it holds no secret (the plugin's address and TLS identity stay in
// the host's reattach file on disk).
type SessionRecord struct {
	// Session is the plugin's id of the agent's open session.
	Session string
	// Backend is the backend plugin serving it.
	Backend string
	// Seq is the last session event whose effects are all written: every
	// event write carries it in the same MULTI, so no event is written
	// twice or skipped across a reattach.
	Seq uint64
	// Turn is the running turn's id; TurnPending when the turn was being
	// started (the id is not known yet); "" when no turn runs.
	Turn string
	// Round is the running turn's round number as the log shows it.
	Round int
	// CountedTurn is the last turn counted in rounds_completed (with the
	// session it ran in: plugins number turns per session), so that a
	// completion replayed after a crash is not counted twice.
	CountedTurn string
}

// TurnPending marks a turn the worker was sending when it recorded it: the
// plugin's turn id is not known yet. A successor that adopts the session
// takes the first turn the session's events name.
const TurnPending = "pending"

const (
	srSession = "session"
	srBackend = "backend"
	srSeq     = "seq"
	srTurn    = "turn"
	srRound   = "round"
	srCounted = "counted_turn"
)

// SessionRecord reads the agent's session record; nil when there is none.
// A record whose numbers do not parse is an error: a successor must not
// guess where to resume.
func (s *Store) SessionRecord(ctx context.Context, agent string) (*SessionRecord, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.SessionRecord(agent)).Result()
	if err != nil {
		return nil, fmt.Errorf("read the session record of %s: %w", agent, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return parseSessionRecord(m)
}

func parseSessionRecord(m map[string]string) (*SessionRecord, error) {
	r := &SessionRecord{Session: m[srSession], Backend: m[srBackend], Turn: m[srTurn], CountedTurn: m[srCounted]}
	if v := m[srSeq]; v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("session record: seq %q is not a number", v)
		}
		r.Seq = n
	}
	if v := m[srRound]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("session record: round %q is not a number", v)
		}
		r.Round = n
	}
	return r, nil
}

// RecordSessionOpened starts the record of a newly opened session: its
// events start at seq 1 and no turn runs in it yet.
func (s *Store) RecordSessionOpened(ctx context.Context, agent, session, backend string) error {
	key := s.keys.SessionRecord(agent)
	p := s.rdb.TxPipeline()
	p.HDel(ctx, key, srTurn, srRound)
	p.HSet(ctx, key, srSession, session, srBackend, backend, srSeq, "0")
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("record the session of %s: %w", agent, err)
	}
	return nil
}

// RecordTurn records the turn running in the session (TurnPending while
// it is being started).
func (s *Store) RecordTurn(ctx context.Context, agent, turn string, round int) error {
	if err := s.rdb.HSet(ctx, s.keys.SessionRecord(agent), srTurn, turn, srRound, strconv.Itoa(round)).Err(); err != nil {
		return fmt.Errorf("record the turn of %s: %w", agent, err)
	}
	return nil
}

// ForgetSession removes the session part of the record (the session was
// closed); the counted turn stays.
func (s *Store) ForgetSession(ctx context.Context, agent string) error {
	if err := s.rdb.HDel(ctx, s.keys.SessionRecord(agent), srSession, srBackend, srSeq, srTurn, srRound).Err(); err != nil {
		return fmt.Errorf("forget the session of %s: %w", agent, err)
	}
	return nil
}

// Cursor names the session event an event write settles: the write and the
// record's seq move together, in one MULTI.
type Cursor struct {
	Agent string
	Seq   uint64
	// EndTurn clears the record's running turn in the same MULTI: the
	// write is the turn's outcome, the last thing a turn writes.
	EndTurn bool
}

// EmitAt is Emit that also moves the agent's session record to c.Seq (when
// it is above 0) and, with c.EndTurn, ends the recorded turn, atomically
// with the event: a successor resuming after the record's seq never writes
// an event twice and never misses one.
func (s *Store) EmitAt(ctx context.Context, ev TownEvent, c Cursor) error {
	if c.Seq == 0 && !c.EndTurn {
		return s.Emit(ctx, ev)
	}
	key := s.keys.SessionRecord(c.Agent)
	return s.emit(ctx, ev, func(p redis.Pipeliner) {
		if c.Seq > 0 {
			p.HSet(ctx, key, srSeq, strconv.FormatUint(c.Seq, 10))
		}
		if c.EndTurn {
			p.HDel(ctx, key, srTurn, srRound)
		}
	})
}

// countRoundScript adds 1 to rounds_completed once per turn of a session:
// turn ids are only unique within their session (a relaunched plugin's
// new session numbers its turns from the start again), so the counted
// turn is kept with the session it ran in (counted_session).
// KEYS: agent hash, session record. ARGV: turn id.
var countRoundScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local session = redis.call('HGET', KEYS[2], 'session') or ''
if redis.call('HGET', KEYS[2], 'counted_turn') == ARGV[1] and (redis.call('HGET', KEYS[2], 'counted_session') or '') == session then return 0 end
redis.call('HINCRBY', KEYS[1], 'rounds_completed', 1)
redis.call('HSET', KEYS[2], 'counted_turn', ARGV[1], 'counted_session', session)
return 1
`)

// CountRound adds 1 to the agent's rounds_completed for the completed turn,
// unless that turn was counted already (a successor replaying the turn's
// completion after a crash). A missing agent hash is left alone.
func (s *Store) CountRound(ctx context.Context, agent, turn string) error {
	if turn == "" {
		return s.IncrRoundsCompleted(ctx, agent)
	}
	err := countRoundScript.Run(ctx, s.rdb, []string{s.keys.Agent(agent), s.keys.SessionRecord(agent)}, turn).Err()
	if err != nil {
		return fmt.Errorf("count the round of %s: %w", agent, err)
	}
	return nil
}
