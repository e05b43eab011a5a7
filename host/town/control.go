package town

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// stopTTL lets a stop flag for a dead agent clean itself up (as in tt).
const stopTTL = time.Hour

// Activity log bounds, as in tt: 10 entries, refreshed one-hour TTL.
const (
	activityKeep = 10
	activityTTL  = time.Hour
)

// RequestStop sets the agent's stop flag (SETEX 3600 "1"; only its
// existence matters) and wakes the worker so it sees the flag at once.
func (s *Store) RequestStop(ctx context.Context, agent string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetEx(ctx, s.keys.Stop(agent), "1", stopTTL)
		s.queueWake(ctx, p, agent)
		return nil
	})
	if err != nil {
		return fmt.Errorf("request stop of %s: %w", agent, err)
	}
	return nil
}

// StopRequested reports whether the stop flag exists.
func (s *Store) StopRequested(ctx context.Context, agent string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.Stop(agent)).Result()
	if err != nil {
		return false, fmt.Errorf("stop flag of %s: %w", agent, err)
	}
	return n == 1, nil
}

// ControlState reads what a running turn must watch, in one round trip:
// whether the stop flag exists and the agent's state (StateStarting, as in
// tt, when the field is unknown). A missing agent is ErrAgentNotFound.
func (s *Store) ControlState(ctx context.Context, agent string) (stop bool, state AgentState, err error) {
	var ex *redis.IntCmd
	var st *redis.StringCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ex = p.Exists(ctx, s.keys.Stop(agent))
		st = p.HGet(ctx, s.keys.Agent(agent), fState)
		return nil
	})
	if err != nil && !isNil(err) {
		return false, "", fmt.Errorf("control state of %s: %w", agent, err)
	}
	raw, err := st.Result()
	if isNil(err) {
		// No state field: tell a deleted agent from a broken record.
		n, err := s.rdb.Exists(ctx, s.keys.Agent(agent)).Result()
		if err != nil {
			return false, "", fmt.Errorf("control state of %s: %w", agent, err)
		}
		if n == 0 {
			return ex.Val() == 1, "", fmt.Errorf("control state: %w: %s", ErrAgentNotFound, agent)
		}
	}
	state, _ = ParseAgentState(raw)
	return ex.Val() == 1, state, nil
}

// ClearStop removes the stop flag (the worker on exit, resume, restart).
func (s *Store) ClearStop(ctx context.Context, agent string) error {
	if err := s.rdb.Del(ctx, s.keys.Stop(agent)).Err(); err != nil {
		return fmt.Errorf("clear stop of %s: %w", agent, err)
	}
	return nil
}

// LogActivity adds a line to the agent's activity log, newest first, kept
// to 10 entries with a refreshed one-hour TTL (LPUSH, LTRIM, EXPIRE in one
// transaction).
func (s *Store) LogActivity(ctx context.Context, agent, text string) error {
	key := s.keys.Activity(agent)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, key, text)
		p.LTrim(ctx, key, 0, activityKeep-1)
		p.Expire(ctx, key, activityTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("log activity of %s: %w", agent, err)
	}
	return nil
}

// Activity returns the newest n activity lines, newest first
// (`tt status --deep` reads 5).
func (s *Store) Activity(ctx context.Context, agent string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	l, err := s.rdb.LRange(ctx, s.keys.Activity(agent), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("activity of %s: %w", agent, err)
	}
	return l, nil
}
