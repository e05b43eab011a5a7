package town

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// BacklogRole is the specialisation tt's worker infers from an agent's
// name (never from role_id) to pick matching backlog tasks.
type BacklogRole int

const (
	RoleGeneral BacklogRole = iota
	RoleFrontend
	RoleBackend
	RoleTester
	RoleReviewer
	RoleDocs
	RoleDevops
	RoleSecurity
)

// roleRules are checked in order; the first rule whose substring occurs in
// the lowercased name wins.
var roleRules = []struct {
	role BacklogRole
	subs []string
}{
	{RoleFrontend, []string{"front", "ui", "web", "client"}},
	{RoleBackend, []string{"back", "api", "server"}},
	{RoleTester, []string{"test", "qa"}},
	{RoleReviewer, []string{"review", "audit"}},
	{RoleDocs, []string{"doc", "writer"}},
	{RoleDevops, []string{"devops", "ops", "infra", "deploy"}},
	{RoleSecurity, []string{"security"}},
}

// RoleForName is tt's classify_backlog_role.
func RoleForName(name string) BacklogRole {
	n := strings.ToLower(name)
	for _, r := range roleRules {
		if containsAny(n, r.subs...) {
			return r.role
		}
	}
	if n == "sec" {
		return RoleSecurity
	}
	return RoleGeneral
}

func (r BacklogRole) String() string {
	return [...]string{"general", "frontend", "backend", "tester", "reviewer", "docs", "devops", "security"}[r]
}

// Keywords are the tags and description words that match the role; the
// general role has none and matches every task.
func (r BacklogRole) Keywords() []string {
	switch r {
	case RoleFrontend:
		return []string{"frontend", "ui", "web", "client", "ux"}
	case RoleBackend:
		return []string{"backend", "api", "server", "database", "data"}
	case RoleTester:
		return []string{"test", "qa", "validation", "regression"}
	case RoleReviewer:
		return []string{"review", "reviewer", "qa", "security", "audit", "validation"}
	case RoleDocs:
		return []string{"docs", "doc", "documentation", "spec", "readme"}
	case RoleDevops:
		return []string{"devops", "ops", "infra", "deploy", "ci", "reliability"}
	case RoleSecurity:
		return []string{"security", "sec", "vulnerability", "hardening", "audit"}
	}
	return nil
}

// Hint is the exact "Role match hint" line tt puts in the prompt.
func (r BacklogRole) Hint() string {
	switch r {
	case RoleFrontend:
		return "Prioritize tasks tagged frontend/ui/web/client."
	case RoleBackend:
		return "Prioritize tasks tagged backend/api/server/database."
	case RoleTester:
		return "Prioritize tasks tagged test/qa/validation/regression."
	case RoleReviewer:
		return "Prioritize review/quality/security validation tasks."
	case RoleDocs:
		return "Prioritize documentation/spec/readme tasks."
	case RoleDevops:
		return "Prioritize infrastructure/ci/deploy/reliability tasks."
	case RoleSecurity:
		return "Prioritize security/vulnerability/hardening tasks."
	}
	return "Prioritize tasks matching your current specialization and capabilities."
}

// Matches reports whether a task suits the role: always for general; else
// when a lowercased tag equals a keyword or the lowercased description
// contains one as a substring (so "ui" matches "build", as in tt).
func (r BacklogRole) Matches(t *Task) bool {
	kws := r.Keywords()
	if r == RoleGeneral {
		return true
	}
	desc := strings.ToLower(t.Description)
	for _, kw := range kws {
		for _, tag := range t.Tags {
			if strings.ToLower(tag) == kw {
				return true
			}
		}
		if strings.Contains(desc, kw) {
			return true
		}
	}
	return false
}

// SplitTags parses `--tags a, b` the way tt does: split on commas, trimmed,
// empty items dropped.
func SplitTags(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// BacklogAdd is `tt backlog add`: a pending task and its id at the end of
// the backlog, in one transaction.
func (s *Store) BacklogAdd(ctx context.Context, description string, tags []string) (*Task, error) {
	t, err := s.newTask(TaskSpec{Description: description, Tags: tags})
	if err != nil {
		return nil, err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		hsetFields(ctx, p, s.keys.Task(t.ID), t.fields())
		p.RPush(ctx, s.keys.Backlog(), t.ID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backlog add: %w", err)
	}
	return t, nil
}

// BacklogEntry is one backlog id and its task (nil when the hash is gone).
type BacklogEntry struct {
	TaskID string
	Task   *Task
}

// BacklogList returns the backlog in order with each task loaded (one
// pipelined round trip for all the HGETALLs).
func (s *Store) BacklogList(ctx context.Context) ([]BacklogEntry, error) {
	ids, err := s.rdb.LRange(ctx, s.keys.Backlog(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("backlog list: %w", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.keys.Task(id)
	}
	maps, err := s.hgetallMany(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("backlog list: %w", err)
	}
	out := make([]BacklogEntry, len(ids))
	for i, id := range ids {
		out[i].TaskID = id
		if maps[i] != nil {
			if t, err := ParseTask(keys[i], maps[i]); err == nil {
				out[i].Task = t
			}
		}
	}
	return out, nil
}

// claimScript takes a task out of the backlog and assigns it in one step.
// LREM is the claim: of two concurrent claims exactly one removes the id.
// KEYS: backlog, task, inbox, wake. ARGV: task id, agent id, now, message.
// Returns -1 when the task hash is missing (the backlog is left alone),
// 0 when the id is not in the backlog, 1 when claimed.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'state', 'assigned', 'assigned_to', ARGV[2], 'updated_at', ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 0)
redis.call('EXPIRE', KEYS[4], 3600)
return 1
`)

// BacklogClaim is `tt backlog claim`: atomically removes the task from the
// backlog (ErrNotInBacklog if it is not there, e.g. someone claimed it
// first), assigns it to agent and sends task_assign from the supervisor.
// The caller resolves the agent first (tt removes the id before resolving,
// so a typo in the agent loses the task; tthost does not).
func (s *Store) BacklogClaim(ctx context.Context, taskID, agent string) (*Task, *Message, error) {
	tid, err := ParseID(taskID)
	if err != nil {
		return nil, nil, fmt.Errorf("backlog claim: %w", err)
	}
	aid, err := ParseID(agent)
	if err != nil {
		return nil, nil, fmt.Errorf("backlog claim: agent: %w", err)
	}
	now := s.nowUTC()
	msg := NewTaskAssign(SupervisorID, aid, tid)
	msg.CreatedAt = now
	raw, err := msg.Marshal()
	if err != nil {
		return nil, nil, err
	}
	k := s.keys
	n, err := claimScript.Run(ctx, s.rdb, []string{k.Backlog(), k.Task(tid), k.Inbox(aid), k.Wake(aid)},
		tid, aid, FormatHashTime(now), raw).Int()
	if err != nil {
		return nil, nil, fmt.Errorf("backlog claim %s: %w", tid, err)
	}
	switch n {
	case -1:
		return nil, nil, fmt.Errorf("backlog claim: %w: %s", ErrTaskNotFound, tid)
	case 0:
		return nil, nil, fmt.Errorf("backlog claim: %w: %s", ErrNotInBacklog, tid)
	}
	msg.Raw = string(raw)
	t, err := s.GetTask(ctx, tid)
	if err != nil {
		return nil, msg, err
	}
	return t, msg, nil
}

// BacklogAssignAll is `tt backlog assign-all`: claims every backlog task for
// agent, in order. Each claim is atomic, so tasks claimed concurrently by
// someone else are skipped, and ids whose task hash is gone are left for
// BacklogRemove.
func (s *Store) BacklogAssignAll(ctx context.Context, agent string) ([]*Task, error) {
	ids, err := s.rdb.LRange(ctx, s.keys.Backlog(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("backlog assign-all: %w", err)
	}
	var out []*Task
	for _, id := range ids {
		t, _, err := s.BacklogClaim(ctx, id, agent)
		switch {
		case err == nil:
			out = append(out, t)
		case errors.Is(err, ErrNotInBacklog), errors.Is(err, ErrTaskNotFound), errors.Is(err, ErrInvalidID):
		default:
			return out, err
		}
	}
	return out, nil
}

// removeScript is `tt backlog remove`: LREM, then DEL the task only if it
// was in the backlog. KEYS: backlog, task. ARGV: task id.
var removeScript = redis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
return 1
`)

// BacklogRemove deletes a task that is in the backlog; false if it was not.
func (s *Store) BacklogRemove(ctx context.Context, taskID string) (bool, error) {
	tid := canonicalOr(taskID)
	n, err := removeScript.Run(ctx, s.rdb, []string{s.keys.Backlog(), s.keys.Task(tid)}, tid).Int()
	if err != nil {
		return false, fmt.Errorf("backlog remove %s: %w", tid, err)
	}
	return n == 1, nil
}

// BacklogSnapshot is what the worker shows an agent about the backlog.
type BacklogSnapshot struct {
	Role     BacklogRole
	Hint     string
	Total    int     // ids in the backlog (LLEN), including ones whose task is gone
	Matching int     // tasks that match the role
	Shown    []*Task // the first `limit` matching tasks, in backlog order
}

// DefaultSnapshotLimit is how many matching tasks tt shows.
const DefaultSnapshotLimit = 8

// BacklogSnapshot reads the backlog for the agent named agentName (the
// role comes from the name): LRANGE plus one pipelined HGETALL round trip,
// not one per task. limit <= 0 means DefaultSnapshotLimit.
func (s *Store) BacklogSnapshot(ctx context.Context, agentName string, limit int) (BacklogSnapshot, error) {
	if limit <= 0 {
		limit = DefaultSnapshotLimit
	}
	role := RoleForName(agentName)
	snap := BacklogSnapshot{Role: role, Hint: role.Hint()}
	entries, err := s.BacklogList(ctx)
	if err != nil {
		return snap, err
	}
	snap.Total = len(entries)
	for _, e := range entries {
		if e.Task == nil || !role.Matches(e.Task) {
			continue
		}
		snap.Matching++
		if len(snap.Shown) < limit {
			snap.Shown = append(snap.Shown, e.Task)
		}
	}
	return snap, nil
}
