package town

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Runtime is what serves an agent, as the worker that serves it wrote it
// last: the backend chosen and why, and the live session's id and steer
// mode. It is tthost's own record (Keys.Runtime), which tt never reads;
// `tthost status` shows it.
type Runtime struct {
	// Backend is the backend plugin ("oneshot", "codex", "claude", "acp").
	Backend string
	// Persistent is true when the backend keeps a live session.
	Persistent bool
	// Fallback is true when the one-shot backend serves in place of a
	// backend the configuration asked for.
	Fallback bool
	// Reason says why this backend was chosen.
	Reason string
	// SessionID is the live session's runtime id ("" before it is ready,
	// and for backends without one).
	SessionID string
	// SteerMode is how urgent messages join a running turn ("native",
	// "queue", "restart"; "" when they wait for the next turn).
	SteerMode string
	// Worker is "hostname:pid" of the worker that wrote the record.
	Worker string
	// UpdatedAt is when it was last written.
	UpdatedAt time.Time
}

const (
	rtBackend    = "backend"
	rtPersistent = "persistent"
	rtFallback   = "fallback"
	rtReason     = "reason"
	rtSession    = "session_id"
	rtSteerMode  = "steer_mode"
	rtWorker     = "worker"
	rtUpdated    = "updated_at"
)

// SetRuntime replaces the agent's runtime record (a worker that chose its
// backend); the session fields start empty until SetRuntimeSession.
func (s *Store) SetRuntime(ctx context.Context, agent string, r Runtime) error {
	key := s.keys.Runtime(agent)
	p := s.rdb.TxPipeline()
	p.Del(ctx, key)
	p.HSet(ctx, key,
		rtBackend, r.Backend, rtPersistent, strconv.FormatBool(r.Persistent), rtFallback, strconv.FormatBool(r.Fallback),
		rtReason, r.Reason, rtSession, r.SessionID, rtSteerMode, r.SteerMode, rtWorker, r.Worker,
		rtUpdated, FormatHashTime(s.nowUTC()))
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("record the runtime of %s: %w", agent, err)
	}
	return nil
}

// SetRuntimeSession records the live session's id and steer mode once it
// is ready.
func (s *Store) SetRuntimeSession(ctx context.Context, agent, sessionID, steerMode string) error {
	err := s.rdb.HSet(ctx, s.keys.Runtime(agent), rtSession, sessionID, rtSteerMode, steerMode, rtUpdated, FormatHashTime(s.nowUTC())).Err()
	if err != nil {
		return fmt.Errorf("record the session of %s: %w", agent, err)
	}
	return nil
}

// Runtime reads the agent's runtime record; nil when no worker wrote one.
func (s *Store) Runtime(ctx context.Context, agent string) (*Runtime, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.Runtime(agent)).Result()
	if err != nil {
		return nil, fmt.Errorf("read the runtime of %s: %w", agent, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	r := &Runtime{
		Backend: m[rtBackend], Reason: m[rtReason], SessionID: m[rtSession], SteerMode: m[rtSteerMode], Worker: m[rtWorker],
	}
	r.Persistent, _ = strconv.ParseBool(m[rtPersistent])
	r.Fallback, _ = strconv.ParseBool(m[rtFallback])
	r.UpdatedAt, _ = ParseTime(m[rtUpdated])
	return r, nil
}
