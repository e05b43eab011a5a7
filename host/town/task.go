package town

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// TaskState is a task's state in its hash spelling.
type TaskState string

const (
	TaskPending   TaskState = "pending"
	TaskAssigned  TaskState = "assigned"
	TaskRunning   TaskState = "running"
	TaskCompleted TaskState = "completed"
	TaskFailed    TaskState = "failed"
	TaskCancelled TaskState = "cancelled"
)

// ParseTaskState reads a hash value; "in_flight" is an accepted alias of
// running. ok is false for anything else, which reads as pending (as in tt).
func ParseTaskState(s string) (state TaskState, ok bool) {
	switch TaskState(s) {
	case TaskPending, TaskAssigned, TaskRunning, TaskCompleted, TaskFailed, TaskCancelled:
		return TaskState(s), true
	case "in_flight":
		return TaskRunning, true
	}
	return TaskPending, false
}

// Terminal states are completed, failed and cancelled.
func (s TaskState) Terminal() bool {
	return s == TaskCompleted || s == TaskFailed || s == TaskCancelled
}

// Task is a task hash as tt writes it. Optional fields are "" or the zero time
// when absent.
type Task struct {
	ID          string
	Description string
	State       TaskState
	RawState    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Tags        []string // never nil; an unparseable tags field reads as empty
	AssignedTo  string
	StartedAt   time.Time
	CompletedAt time.Time
	Result      string
	ParentID    string
	Problems    []FieldProblem
}

// Task hash field names.
const (
	tDescription = "description"
	tState       = "state"
	tCreatedAt   = "created_at"
	tUpdatedAt   = "updated_at"
	tTags        = "tags"
	tAssignedTo  = "assigned_to"
	tStartedAt   = "started_at"
	tCompletedAt = "completed_at"
	tResult      = "result"
	tParentID    = "parent_id"
)

// fields returns the record in tt's order: required, then optional set ones.
func (t *Task) fields() []field {
	fs := []field{{fID, t.ID}, {tDescription, t.Description}, {tState, string(t.State)},
		{tCreatedAt, FormatHashTime(t.CreatedAt)}, {tUpdatedAt, FormatHashTime(t.UpdatedAt)},
		{tTags, string(appendStringList(nil, t.Tags))}}
	if t.AssignedTo != "" {
		fs = append(fs, field{tAssignedTo, t.AssignedTo})
	}
	if !t.StartedAt.IsZero() {
		fs = append(fs, field{tStartedAt, FormatHashTime(t.StartedAt)})
	}
	if !t.CompletedAt.IsZero() {
		fs = append(fs, field{tCompletedAt, FormatHashTime(t.CompletedAt)})
	}
	if t.Result != "" {
		fs = append(fs, field{tResult, t.Result})
	}
	if t.ParentID != "" {
		fs = append(fs, field{tParentID, t.ParentID})
	}
	return fs
}

// HasTag reports whether the task carries tag exactly.
func (t *Task) HasTag(tag string) bool {
	for _, x := range t.Tags {
		if x == tag {
			return true
		}
	}
	return false
}

// ParseTask reads a task hash; without a valid id field it fails, every
// other defect is recorded in Problems.
func ParseTask(key string, m map[string]string) (*Task, error) {
	r := &recordReader{m: m}
	id, err := r.id("task", key)
	if err != nil {
		return nil, err
	}
	t := &Task{ID: id, Description: r.required(tDescription), Tags: []string{}}
	t.RawState = r.required(tState)
	st, ok := ParseTaskState(t.RawState)
	t.State = st
	if !ok && t.RawState != "" {
		r.problem(tState, t.RawState, fmt.Errorf("unknown state (reads as pending)"))
	}
	t.CreatedAt = r.time(tCreatedAt, true)
	t.UpdatedAt = r.time(tUpdatedAt, true)
	if v := r.required(tTags); v != "" {
		var tags []string
		if err := json.Unmarshal([]byte(v), &tags); err != nil {
			r.problem(tTags, v, err)
		} else if tags != nil {
			t.Tags = tags
		}
	}
	t.AssignedTo = r.optionalID(tAssignedTo)
	t.StartedAt = r.time(tStartedAt, false)
	t.CompletedAt = r.time(tCompletedAt, false)
	t.Result = m[tResult]
	t.ParentID = r.optionalID(tParentID)
	t.Problems = r.problems
	return t, nil
}

// TaskSpec describes a new task.
type TaskSpec struct {
	ID          string // optional; a fresh id when empty
	Description string
	Tags        []string
	AssignedTo  string // optional; the task starts assigned to this agent
	ParentID    string
}

func (s *Store) newTask(spec TaskSpec) (*Task, error) {
	id := spec.ID
	if id == "" {
		id = NewID()
	}
	id, err := ParseID(id)
	if err != nil {
		return nil, fmt.Errorf("new task: %w", err)
	}
	now := s.nowUTC()
	t := &Task{ID: id, Description: spec.Description, State: TaskPending,
		CreatedAt: now, UpdatedAt: now, Tags: append([]string{}, spec.Tags...)}
	if spec.AssignedTo != "" {
		if t.AssignedTo, err = ParseID(spec.AssignedTo); err != nil {
			return nil, fmt.Errorf("new task: assigned_to: %w", err)
		}
		t.State = TaskAssigned
	}
	if spec.ParentID != "" {
		if t.ParentID, err = ParseID(spec.ParentID); err != nil {
			return nil, fmt.Errorf("new task: parent_id: %w", err)
		}
	}
	t.RawState = string(t.State)
	return t, nil
}

// CreateTask writes a new task hash whole (the only whole-record write:
// nothing else can be writing a record that does not exist yet).
func (s *Store) CreateTask(ctx context.Context, spec TaskSpec) (*Task, error) {
	t, err := s.newTask(spec)
	if err != nil {
		return nil, err
	}
	created, err := s.createHash(ctx, s.keys.Task(t.ID), t.fields())
	if err != nil {
		return nil, fmt.Errorf("create task: %w", err)
	}
	if !created {
		return nil, fmt.Errorf("create task: %w: %s", ErrTaskExists, t.ID)
	}
	return t, nil
}

// hsetFields queues an HSET of fields in order on a pipeline.
func hsetFields(ctx context.Context, p redis.Pipeliner, key string, fs []field) {
	args := make([]any, 0, 2*len(fs))
	for _, f := range fs {
		args = append(args, f.name, f.value)
	}
	p.HSet(ctx, key, args...)
}

// GetTask reads one task; a missing hash is ErrTaskNotFound.
func (s *Store) GetTask(ctx context.Context, id string) (*Task, error) {
	key := s.keys.Task(id)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTaskNotFound, id)
	}
	return ParseTask(key, m)
}

// ListTasks returns every task, oldest first (SCAN and one pipelined
// HGETALL; unreadable keys are skipped as in ListAgents).
func (s *Store) ListTasks(ctx context.Context) ([]*Task, error) {
	keys, err := s.scanKeys(ctx, s.keys.TaskPattern())
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return s.loadTasks(ctx, keys, true)
}

// loadTasks loads task hashes by key, skipping missing and invalid ones.
func (s *Store) loadTasks(ctx context.Context, keys []string, sorted bool) ([]*Task, error) {
	maps, err := s.hgetallMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	var out []*Task
	for i, m := range maps {
		if m == nil {
			continue
		}
		t, err := ParseTask(keys[i], m)
		if err != nil || s.keys.Task(t.ID) != keys[i] {
			continue
		}
		out = append(out, t)
	}
	if sorted {
		sort.SliceStable(out, func(i, j int) bool {
			if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
				return out[i].CreatedAt.Before(out[j].CreatedAt)
			}
			return out[i].ID < out[j].ID
		})
	}
	return out, nil
}

// updateTask applies single-field ops to an existing task.
func (s *Store) updateTask(ctx context.Context, id string, cond *hashCond, ops ...hashOp) (bool, error) {
	exists, held, err := s.updateHash(ctx, s.keys.Task(id), cond, ops...)
	if err != nil {
		return false, fmt.Errorf("update task %s: %w", id, err)
	}
	if !exists {
		return false, fmt.Errorf("%w: %s", ErrTaskNotFound, id)
	}
	return held, nil
}

// AssignTask marks the task assigned to agent.
func (s *Store) AssignTask(ctx context.Context, taskID, agent string) error {
	aid, err := ParseID(agent)
	if err != nil {
		return fmt.Errorf("assign task %s: %w", taskID, err)
	}
	now := FormatHashTime(s.nowUTC())
	_, err = s.updateTask(ctx, taskID, nil,
		set(tState, string(TaskAssigned)), set(tAssignedTo, aid), set(tUpdatedAt, now))
	return err
}

var runningOrTerminal = []string{string(TaskRunning), "in_flight",
	string(TaskCompleted), string(TaskFailed), string(TaskCancelled)}

// StartTask marks the task running unless it already is or is terminal
// (what the worker does before a turn). started reports whether it changed.
func (s *Store) StartTask(ctx context.Context, taskID string) (started bool, err error) {
	now := FormatHashTime(s.nowUTC())
	return s.updateTask(ctx, taskID, &hashCond{field: tState, notIn: true, values: runningOrTerminal},
		hashOp{"c", tState, string(TaskRunning)}, hashOp{"c", tStartedAt, now},
		hashOp{"c", tUpdatedAt, now})
}

// ReturnToAssigned moves a running task back to assigned (same assignee),
// as the worker does after a failed turn. It changes nothing unless the
// task is running.
func (s *Store) ReturnToAssigned(ctx context.Context, taskID string) (bool, error) {
	now := FormatHashTime(s.nowUTC())
	return s.updateTask(ctx, taskID,
		&hashCond{field: tState, values: []string{string(TaskRunning), "in_flight"}},
		hashOp{"c", tState, string(TaskAssigned)}, hashOp{"c", tUpdatedAt, now})
}

// RequeueTask puts the task back to pending: assigned_to and started_at are
// removed.
func (s *Store) RequeueTask(ctx context.Context, taskID string) error {
	now := FormatHashTime(s.nowUTC())
	_, err := s.updateTask(ctx, taskID, nil,
		set(tState, string(TaskPending)), del(tAssignedTo), del(tStartedAt), set(tUpdatedAt, now))
	return err
}

// FailTask and CancelTask end the task with the reason as its result.
func (s *Store) FailTask(ctx context.Context, taskID, reason string) error {
	return s.endTask(ctx, taskID, TaskFailed, reason)
}

func (s *Store) CancelTask(ctx context.Context, taskID, reason string) error {
	return s.endTask(ctx, taskID, TaskCancelled, reason)
}

func (s *Store) endTask(ctx context.Context, taskID string, st TaskState, reason string) error {
	now := FormatHashTime(s.nowUTC())
	ops := []hashOp{set(tState, string(st)), set(tUpdatedAt, now)}
	if reason != "" {
		ops = append(ops, set(tResult, reason))
	}
	_, err := s.updateTask(ctx, taskID, nil, ops...)
	return err
}

// DeleteTask removes the task hash.
func (s *Store) DeleteTask(ctx context.Context, taskID string) error {
	if err := s.rdb.Del(ctx, s.keys.Task(taskID)).Err(); err != nil {
		return fmt.Errorf("delete task %s: %w", taskID, err)
	}
	return nil
}

// completeScript is `tt task complete` in one atomic step, so two
// concurrent completions count the task once.
// KEYS: task, assignee's agent hash (the task key again when unassigned).
// ARGV: expected assigned_to as stored, result, now, task id.
// Returns {code, previous state}: code -1 = task missing, -2 = assigned_to
// changed since it was read (the caller retries), 0 = done without an agent
// update, 1 = done and the agent updated.
var completeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local assigned = redis.call('HGET', KEYS[1], 'assigned_to') or ''
if assigned ~= ARGV[1] then return {-2, assigned} end
local prev = redis.call('HGET', KEYS[1], 'state') or ''
redis.call('HSET', KEYS[1], 'state', 'completed', 'result', ARGV[2],
  'completed_at', ARGV[3], 'updated_at', ARGV[3])
local terminal = prev == 'completed' or prev == 'failed' or prev == 'cancelled'
if assigned == '' or redis.call('EXISTS', KEYS[2]) == 0 then return {0, prev} end
if redis.call('HGET', KEYS[2], 'current_task') == ARGV[4] then
  redis.call('HDEL', KEYS[2], 'current_task')
end
redis.call('HSET', KEYS[2], 'last_heartbeat', ARGV[3])
if not terminal then
  local r = redis.pcall('HINCRBY', KEYS[2], 'tasks_completed', 1)
  if type(r) == 'table' and r.err then redis.call('HSET', KEYS[2], 'tasks_completed', 1) end
end
return {1, prev}
`)

// Completion is the outcome of CompleteTask.
type Completion struct {
	Task         *Task // the task after completion
	WasTerminal  bool  // it was already completed, failed or cancelled (not counted again)
	AgentUpdated bool  // the assignee existed and was updated
}

// CompleteTask is `tt task complete`: the task becomes completed with result
// (default "Completed"); if it is assigned to an existing agent, that
// agent's current_task is cleared when it names this task, its heartbeat is
// set, and tasks_completed is incremented unless the task was already
// terminal. All of it is one atomic step. Mission syncing, which `tt task
// complete` also does for mission-tagged tasks, is not done here.
func (s *Store) CompleteTask(ctx context.Context, taskID, result string) (Completion, error) {
	if result == "" {
		result = "Completed"
	}
	tid := canonicalOr(taskID)
	tkey := s.keys.Task(tid)
	for attempt := 0; attempt < 5; attempt++ {
		assigned, err := s.rdb.HGet(ctx, tkey, tAssignedTo).Result()
		if err != nil && !isNil(err) {
			return Completion{}, fmt.Errorf("complete task %s: %w", tid, err)
		}
		akey := tkey
		if assigned != "" {
			akey = s.keys.Agent(assigned)
		}
		now := FormatHashTime(s.nowUTC())
		v, err := completeScript.Run(ctx, s.rdb, []string{tkey, akey}, assigned, result, now, tid).Slice()
		if err != nil {
			return Completion{}, fmt.Errorf("complete task %s: %w", tid, err)
		}
		if len(v) != 2 {
			return Completion{}, fmt.Errorf("complete task %s: unexpected reply %v", tid, v)
		}
		code, _ := v[0].(int64)
		prev, _ := v[1].(string)
		switch code {
		case -1:
			return Completion{}, fmt.Errorf("complete task: %w: %s", ErrTaskNotFound, tid)
		case -2:
			continue
		}
		st, _ := ParseTaskState(prev)
		c := Completion{WasTerminal: prev != "" && st.Terminal(), AgentUpdated: code == 1}
		if c.Task, err = s.GetTask(ctx, tid); err != nil {
			return c, err
		}
		return c, nil
	}
	return Completion{}, fmt.Errorf("complete task %s: assignee kept changing; try again", tid)
}

// CurrentTaskFor finds the task an agent is working on (tt's
// current_for_agent): its current_task if set, else the single non-terminal
// task assigned to it. It returns nil when there is none (or several, or
// current_task names a task that no longer exists).
func (s *Store) CurrentTaskFor(ctx context.Context, agent string) (*Task, error) {
	a, err := s.GetAgent(ctx, agent)
	if err != nil {
		return nil, err
	}
	if a.CurrentTask != "" {
		t, err := s.GetTask(ctx, a.CurrentTask)
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		return t, nil
	}
	tasks, err := s.ListTasks(ctx)
	if err != nil {
		return nil, err
	}
	var found *Task
	for _, t := range tasks {
		if t.AssignedTo == a.ID && !t.State.Terminal() {
			if found != nil {
				return nil, nil
			}
			found = t
		}
	}
	return found, nil
}

// Assign is `tt assign`: a new task assigned to agent and a task_assign
// message from the supervisor in the agent's inbox, in one transaction (and
// a wake token). Like tt it neither sets current_task nor emits an event.
// The caller resolves the agent first.
func (s *Store) Assign(ctx context.Context, agent, description string, tags []string) (*Task, *Message, error) {
	t, err := s.newTask(TaskSpec{Description: description, Tags: tags, AssignedTo: agent})
	if err != nil {
		return nil, nil, err
	}
	msg := NewTaskAssign(SupervisorID, t.AssignedTo, t.ID)
	msg.CreatedAt = s.nowUTC()
	raw, err := msg.Marshal()
	if err != nil {
		return nil, nil, err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		hsetFields(ctx, p, s.keys.Task(t.ID), t.fields())
		p.RPush(ctx, s.keys.Inbox(t.AssignedTo), raw)
		s.queueWake(ctx, p, t.AssignedTo)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("assign to %s: %w", agent, err)
	}
	msg.Raw = string(raw)
	return t, msg, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrTaskNotFound) || errors.Is(err, ErrAgentNotFound)
}
