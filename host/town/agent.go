package town

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AgentState is an agent's lifecycle state in its hash spelling (lowercase).
type AgentState string

const (
	StateCold     AgentState = "cold"
	StateStarting AgentState = "starting"
	StateIdle     AgentState = "idle"
	StateWorking  AgentState = "working"
	StatePaused   AgentState = "paused"
	StateDraining AgentState = "draining"
	StateStopped  AgentState = "stopped"
	StateError    AgentState = "error"
)

var agentStates = []AgentState{StateCold, StateStarting, StateIdle, StateWorking,
	StatePaused, StateDraining, StateStopped, StateError}

// ParseAgentState reads a hash value. Like tt, only the exact lowercase
// spelling is known; ok is false otherwise and the state is StateStarting,
// the value tt reads.
func ParseAgentState(s string) (state AgentState, ok bool) {
	for _, st := range agentStates {
		if string(st) == s {
			return st, true
		}
	}
	return StateStarting, false
}

// Debug is the capitalised spelling ("Idle") that events and REST/MCP JSON
// use; only the hash uses lowercase.
func (s AgentState) Debug() string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}

// Terminal states (stopped, error, cold) mean no process is expected.
func (s AgentState) Terminal() bool {
	return s == StateStopped || s == StateError || s == StateCold
}

// AgentType is worker or supervisor; spawned agents are workers.
type AgentType string

const (
	AgentWorker     AgentType = "worker"
	AgentSupervisor AgentType = "supervisor"
)

// SpawnMode is fresh, forkedcontext (one word) or resumed.
type SpawnMode string

const (
	SpawnFresh         SpawnMode = "fresh"
	SpawnForkedContext SpawnMode = "forkedcontext"
	SpawnResumed       SpawnMode = "resumed"
)

// Agent is an agent hash as tt writes it. Optional fields are "" when absent.
type Agent struct {
	ID              string
	Name            string
	Type            AgentType
	State           AgentState
	RawState        string // the hash value as read (State falls back to starting)
	CLI             string
	CreatedAt       time.Time
	LastHeartbeat   time.Time
	TasksCompleted  uint64
	RoundsCompleted uint64
	// LastActiveAt reads as CreatedAt when the field is missing, as in tt.
	LastActiveAt     time.Time
	SpawnMode        SpawnMode
	CurrentTask      string
	Nickname         string
	RoleID           string
	ParentAgentID    string
	RuntimeSessionID string

	// Problems lists fields that were missing or did not parse; their value
	// above is tt's default or the zero time. Empty for a healthy record.
	Problems []FieldProblem
}

// ShortID is the first 4 characters of the id.
func (a *Agent) ShortID() string { return ShortID(a.ID) }

// DisplayName is the nickname, else the name.
func (a *Agent) DisplayName() string {
	if a.Nickname != "" {
		return a.Nickname
	}
	return a.Name
}

// DisplayLabel is tt's "<nickname or name> [<role_id>]", with the name in
// the brackets when the role is missing or "default".
func (a *Agent) DisplayLabel() string {
	role := a.RoleID
	if role == "" || role == "default" {
		role = a.Name
	}
	return a.DisplayName() + " [" + role + "]"
}

// Agent hash field names.
const (
	fID               = "id"
	fName             = "name"
	fAgentType        = "agent_type"
	fState            = "state"
	fCLI              = "cli"
	fCreatedAt        = "created_at"
	fLastHeartbeat    = "last_heartbeat"
	fTasksCompleted   = "tasks_completed"
	fRoundsCompleted  = "rounds_completed"
	fLastActiveAt     = "last_active_at"
	fSpawnMode        = "spawn_mode"
	fCurrentTask      = "current_task"
	fNickname         = "nickname"
	fRoleID           = "role_id"
	fParentAgentID    = "parent_agent_id"
	fRuntimeSessionID = "runtime_session_id"
)

var (
	agentRequired = []string{fID, fName, fAgentType, fState, fCLI, fCreatedAt, fLastHeartbeat,
		fTasksCompleted, fRoundsCompleted, fLastActiveAt, fSpawnMode}
	agentOptional = []string{fCurrentTask, fNickname, fRoleID, fParentAgentID, fRuntimeSessionID}
)

// fields returns the record in tt's write order: required fields, then the
// optional ones that are set.
func (a *Agent) fields() []field {
	fs := []field{
		{fID, a.ID}, {fName, a.Name}, {fAgentType, string(a.Type)}, {fState, string(a.State)},
		{fCLI, a.CLI}, {fCreatedAt, FormatHashTime(a.CreatedAt)},
		{fLastHeartbeat, FormatHashTime(a.LastHeartbeat)},
		{fTasksCompleted, strconv.FormatUint(a.TasksCompleted, 10)},
		{fRoundsCompleted, strconv.FormatUint(a.RoundsCompleted, 10)},
		{fLastActiveAt, FormatHashTime(a.LastActiveAt)}, {fSpawnMode, string(a.SpawnMode)},
	}
	for _, o := range []field{{fCurrentTask, a.CurrentTask}, {fNickname, a.Nickname},
		{fRoleID, a.RoleID}, {fParentAgentID, a.ParentAgentID},
		{fRuntimeSessionID, a.RuntimeSessionID}} {
		if o.value != "" {
			fs = append(fs, o)
		}
	}
	return fs
}

// ParseAgent reads an agent hash (an HGETALL result). key is only used in
// errors. Without a valid id field it fails, as tt's get_agent_state does;
// every other defect is recorded in Problems.
func ParseAgent(key string, m map[string]string) (*Agent, error) {
	r := &recordReader{m: m}
	id, err := r.id("agent", key)
	if err != nil {
		return nil, err
	}
	a := &Agent{ID: id, Name: r.required(fName), CLI: r.required(fCLI)}

	switch v := r.required(fAgentType); AgentType(v) {
	case AgentWorker, AgentSupervisor:
		a.Type = AgentType(v)
	default:
		a.Type = AgentWorker
		if v != "" {
			r.problem(fAgentType, v, fmt.Errorf("unknown agent type"))
		}
	}
	a.RawState = r.required(fState)
	st, ok := ParseAgentState(a.RawState)
	a.State = st
	if !ok && a.RawState != "" {
		r.problem(fState, a.RawState, fmt.Errorf("unknown state (reads as starting)"))
	}
	a.CreatedAt = r.time(fCreatedAt, true)
	a.LastHeartbeat = r.time(fLastHeartbeat, true)
	a.TasksCompleted = r.uint(fTasksCompleted)
	a.RoundsCompleted = r.uint(fRoundsCompleted)
	if _, ok := m[fLastActiveAt]; ok {
		a.LastActiveAt = r.time(fLastActiveAt, true)
	} else {
		a.LastActiveAt = a.CreatedAt
	}
	switch v := r.required(fSpawnMode); SpawnMode(v) {
	case SpawnFresh, SpawnForkedContext, SpawnResumed:
		a.SpawnMode = SpawnMode(v)
	default:
		a.SpawnMode = SpawnFresh
		if v != "" {
			r.problem(fSpawnMode, v, fmt.Errorf("unknown spawn mode"))
		}
	}
	a.CurrentTask = r.optionalID(fCurrentTask)
	a.Nickname = m[fNickname]
	a.RoleID = m[fRoleID]
	a.ParentAgentID = r.optionalID(fParentAgentID)
	a.RuntimeSessionID = m[fRuntimeSessionID]
	a.Problems = r.problems
	return a, nil
}

// AgentSpec describes a new agent (what `tt spawn` is given).
type AgentSpec struct {
	ID            string // optional; a fresh id when empty
	Name          string // required; "supervisor" and "conductor" are reserved
	CLI           string // required: the normalized CLI name
	Nickname      string // optional; derived from the id when empty
	RoleID        string
	ParentAgentID string
	Type          AgentType // default worker
	SpawnMode     SpawnMode // default fresh
}

// CreateAgent writes a new agent hash the way `tt spawn` leaves it: every
// required field, state starting, counters 0, the nickname, and optional
// fields absent unless given. It fails with ErrAgentExists rather than merge
// into an existing hash.
func (s *Store) CreateAgent(ctx context.Context, spec AgentSpec) (*Agent, error) {
	name := spec.Name
	if strings.TrimSpace(name) == "" {
		return nil, fmt.Errorf("create agent: empty name")
	}
	if IsSupervisorName(name) {
		return nil, fmt.Errorf("create agent %q: %w (supervisor and conductor address the supervisor)", name, ErrReservedName)
	}
	if spec.CLI == "" {
		return nil, fmt.Errorf("create agent %q: empty cli", name)
	}
	id := spec.ID
	if id == "" {
		id = NewID()
	}
	id, err := ParseID(id)
	if err != nil {
		return nil, fmt.Errorf("create agent %q: %w", name, err)
	}
	parent := ""
	if spec.ParentAgentID != "" {
		if parent, err = ParseID(spec.ParentAgentID); err != nil {
			return nil, fmt.Errorf("create agent %q: parent: %w", name, err)
		}
	}
	now := s.nowUTC()
	a := &Agent{
		ID: id, Name: name, Type: spec.Type, State: StateStarting, RawState: string(StateStarting),
		CLI: spec.CLI, CreatedAt: now, LastHeartbeat: now, LastActiveAt: now,
		SpawnMode: spec.SpawnMode, Nickname: spec.Nickname, RoleID: spec.RoleID,
		ParentAgentID: parent,
	}
	if a.Type == "" {
		a.Type = AgentWorker
	}
	if a.SpawnMode == "" {
		a.SpawnMode = SpawnFresh
	}
	if a.Nickname == "" {
		a.Nickname = Nickname(id)
	}
	created, err := s.createHash(ctx, s.keys.Agent(id), a.fields())
	if err != nil {
		return nil, fmt.Errorf("create agent %q: %w", name, err)
	}
	if !created {
		return nil, fmt.Errorf("create agent %q: %w: %s", name, ErrAgentExists, id)
	}
	return a, nil
}

// GetAgent reads one agent. A missing hash is ErrAgentNotFound; a hash
// without a valid id is ErrInvalidRecord.
func (s *Store) GetAgent(ctx context.Context, id string) (*Agent, error) {
	key := s.keys.Agent(id)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", id, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrAgentNotFound, id)
	}
	return ParseAgent(key, m)
}

// AgentState reads only the state field (HGET): StateStarting, as in tt,
// when it is unknown; ErrAgentNotFound when the agent is missing.
func (s *Store) AgentState(ctx context.Context, id string) (AgentState, error) {
	_, state, err := s.ControlState(ctx, id)
	return state, err
}

// ListAgents returns every agent of the town, oldest first. It uses SCAN
// (not KEYS) and one pipelined HGETALL; keys that are not hashes, hashes
// without a valid id, and hashes whose id does not match their key (another
// town whose name extends this one's) are skipped rather than failing the
// whole listing.
func (s *Store) ListAgents(ctx context.Context) ([]*Agent, error) {
	keys, err := s.scanKeys(ctx, s.keys.AgentPattern())
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	maps, err := s.hgetallMany(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	var out []*Agent
	for i, m := range maps {
		if m == nil {
			continue
		}
		a, err := ParseAgent(keys[i], m)
		if err != nil || s.keys.Agent(a.ID) != keys[i] {
			continue
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// AgentUpdate is a set of single-field writes applied atomically to an
// existing agent hash. tt rewrites the whole record; tthost writes only what
// changed, so it never clobbers a concurrent `tt interrupt` or `tt kill`.
type AgentUpdate struct {
	// State is written when non-empty, unless the current state is one of
	// UnlessState (e.g. keep paused when going idle).
	State       AgentState
	UnlessState []AgentState
	// Heartbeat and Active set last_heartbeat / last_active_at to now: At,
	// or the store's clock when At is zero (a worker passes its own clock,
	// so the times it writes are the ones it decides by).
	Heartbeat bool
	Active    bool
	At        time.Time
	// CurrentTask and RuntimeSessionID are written when non-nil; "" removes
	// the field (tt HDELs absent optional fields).
	CurrentTask      *string
	RuntimeSessionID *string
	// IncrRounds and IncrTasks are added with HINCRBY.
	IncrRounds int64
	IncrTasks  int64
}

// UpdateAgent applies u. stateWritten reports whether u.State was written
// (false when it was empty or blocked by UnlessState). A missing agent is
// ErrAgentNotFound and nothing is written.
func (s *Store) UpdateAgent(ctx context.Context, id string, u AgentUpdate) (stateWritten bool, err error) {
	at := u.At
	if at.IsZero() {
		at = s.nowUTC()
	}
	now := FormatHashTime(at)
	var ops []hashOp
	var cond *hashCond
	if u.State != "" {
		if len(u.UnlessState) > 0 {
			cond = &hashCond{field: fState, notIn: true}
			for _, st := range u.UnlessState {
				cond.values = append(cond.values, string(st))
			}
			ops = append(ops, hashOp{"c", fState, string(u.State)})
		} else {
			ops = append(ops, set(fState, string(u.State)))
		}
	}
	if u.Heartbeat {
		ops = append(ops, set(fLastHeartbeat, now))
	}
	if u.Active {
		ops = append(ops, set(fLastActiveAt, now))
	}
	if u.CurrentTask != nil {
		if *u.CurrentTask == "" {
			ops = append(ops, del(fCurrentTask))
		} else {
			tid, err := ParseID(*u.CurrentTask)
			if err != nil {
				return false, fmt.Errorf("update agent %s: current task: %w", id, err)
			}
			ops = append(ops, set(fCurrentTask, tid))
		}
	}
	if u.RuntimeSessionID != nil {
		if *u.RuntimeSessionID == "" {
			ops = append(ops, del(fRuntimeSessionID))
		} else {
			ops = append(ops, set(fRuntimeSessionID, *u.RuntimeSessionID))
		}
	}
	if u.IncrRounds != 0 {
		ops = append(ops, incr(fRoundsCompleted, u.IncrRounds))
	}
	if u.IncrTasks != 0 {
		ops = append(ops, incr(fTasksCompleted, u.IncrTasks))
	}
	if len(ops) == 0 {
		return false, nil
	}
	exists, held, err := s.updateHash(ctx, s.keys.Agent(id), cond, ops...)
	if err != nil {
		return false, fmt.Errorf("update agent %s: %w", id, err)
	}
	if !exists {
		return false, fmt.Errorf("update agent: %w: %s", ErrAgentNotFound, id)
	}
	return u.State != "" && held, nil
}

// SetAgentFields writes raw hash values (the caller encodes them: lowercase
// enums, FormatHashTime timestamps). An empty value removes an optional
// field; unknown fields, the id, and empty required fields are refused.
func (s *Store) SetAgentFields(ctx context.Context, id string, fields map[string]string) error {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	var ops []hashOp
	for _, n := range names {
		v := fields[n]
		switch {
		case n == fID:
			return fmt.Errorf("set agent fields: the id field cannot change")
		case contains(agentOptional, n):
			if v == "" {
				ops = append(ops, del(n))
			} else {
				ops = append(ops, set(n, v))
			}
		case contains(agentRequired, n):
			if v == "" {
				return fmt.Errorf("set agent fields: %s is required and cannot be empty", n)
			}
			ops = append(ops, set(n, v))
		default:
			return fmt.Errorf("set agent fields: %w: %q", ErrUnknownField, n)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	exists, _, err := s.updateHash(ctx, s.keys.Agent(id), nil, ops...)
	if err != nil {
		return fmt.Errorf("set agent fields %s: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("set agent fields: %w: %s", ErrAgentNotFound, id)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SetAgentState writes the state field only.
func (s *Store) SetAgentState(ctx context.Context, id string, state AgentState) error {
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{State: state})
	return err
}

// SetAgentStateUnless writes state unless the current state is one of
// unless, atomically (tt's "idle unless paused" without its race).
func (s *Store) SetAgentStateUnless(ctx context.Context, id string, state AgentState, unless ...AgentState) (bool, error) {
	return s.UpdateAgent(ctx, id, AgentUpdate{State: state, UnlessState: unless})
}

// heartbeatAllScript sets last_heartbeat on every agent hash that exists
// (a deleted agent is not brought back as a partial record).
// KEYS: the agent hashes. ARGV: the field, the time.
var heartbeatAllScript = redis.NewScript(`
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then redis.call('HSET', k, ARGV[1], ARGV[2]) end
end
return #KEYS
`)

// HeartbeatAll sets last_heartbeat to now on each of the agents that has a
// record, in one round trip: a serve host's heartbeat for its idle agents.
func (s *Store) HeartbeatAll(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.keys.Agent(id)
	}
	if err := heartbeatAllScript.Run(ctx, s.rdb, keys, fLastHeartbeat, FormatHashTime(s.nowUTC())).Err(); err != nil {
		return fmt.Errorf("heartbeat of %d agents: %w", len(ids), err)
	}
	return nil
}

// Heartbeat sets last_heartbeat to now.
func (s *Store) Heartbeat(ctx context.Context, id string) error {
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{Heartbeat: true})
	return err
}

// IncrRoundsCompleted adds 1 to rounds_completed (HINCRBY).
func (s *Store) IncrRoundsCompleted(ctx context.Context, id string) error {
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{IncrRounds: 1})
	return err
}

// IncrTasksCompleted adds 1 to tasks_completed (HINCRBY).
func (s *Store) IncrTasksCompleted(ctx context.Context, id string) error {
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{IncrTasks: 1})
	return err
}

// SetCurrentTask sets current_task and, like tt, the heartbeat.
func (s *Store) SetCurrentTask(ctx context.Context, id, taskID string) error {
	if taskID == "" {
		return fmt.Errorf("set current task of %s: empty task id", id)
	}
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{CurrentTask: &taskID, Heartbeat: true})
	return err
}

// ClearCurrentTask removes current_task (HDEL).
func (s *Store) ClearCurrentTask(ctx context.Context, id string) error {
	empty := ""
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{CurrentTask: &empty})
	return err
}

// ClearCurrentTaskIf removes current_task only while it still names taskID,
// so clearing a finished task never drops a newer pointer.
func (s *Store) ClearCurrentTaskIf(ctx context.Context, id, taskID string) (bool, error) {
	exists, held, err := s.updateHash(ctx, s.keys.Agent(id),
		&hashCond{field: fCurrentTask, values: []string{canonicalOr(taskID), taskID}},
		hashOp{"x", fCurrentTask, ""})
	if err != nil {
		return false, fmt.Errorf("clear current task of %s: %w", id, err)
	}
	if !exists {
		return false, fmt.Errorf("clear current task: %w: %s", ErrAgentNotFound, id)
	}
	return held, nil
}

// SetRuntimeSessionID saves the persistent backend's session (thread) id.
func (s *Store) SetRuntimeSessionID(ctx context.Context, id, session string) error {
	if session == "" {
		return fmt.Errorf("set runtime session of %s: empty session id", id)
	}
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{RuntimeSessionID: &session})
	return err
}

// ClearRuntimeSessionID removes runtime_session_id (e.g. after a failed
// resume, so the next start opens a fresh session; tt never clears it).
func (s *Store) ClearRuntimeSessionID(ctx context.Context, id string) error {
	empty := ""
	_, err := s.UpdateAgent(ctx, id, AgentUpdate{RuntimeSessionID: &empty})
	return err
}

// DeleteAgent removes the agent and its per-agent keys, as `tt prune` does
// (hash, inbox, urgent, activity, stop) plus tthost's in-flight, dead-letter
// and wake lists. Event streams are kept, as tt keeps them.
func (s *Store) DeleteAgent(ctx context.Context, id string) error {
	k := s.keys
	err := s.rdb.Del(ctx, k.Agent(id), k.Inbox(id), k.Urgent(id), k.Activity(id), k.Stop(id),
		k.InFlight(id), k.DeadLetter(id), k.Wake(id), k.LeaseLast(id), k.Runtime(id), k.SessionRecord(id)).Err()
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", id, err)
	}
	return nil
}

// isNil reports a redis.Nil reply.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }
