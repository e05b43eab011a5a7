package town

import "strings"

// Keys builds the Redis key names of one town. Every key starts with
// "tt:{town}:"; the town name is used as-is, exactly as tt does, so both
// programs address the same keys. Ids are canonicalised first because keys
// are only ever built from the lowercase hyphenated form.
//
// tthost's own bookkeeping lives under "tt:{town}:tthost:", a prefix that tt
// never lists (it only scans agent:*, task:* and mission:*) but that
// `tt reset` (SCAN tt:{town}:*) still cleans up.
type Keys struct {
	prefix string
}

// NewKeys returns the key builder for town.
func NewKeys(town string) Keys { return Keys{prefix: "tt:" + town + ":"} }

// Prefix is "tt:{town}:".
func (k Keys) Prefix() string { return k.prefix }

// Agent is the agent hash.
func (k Keys) Agent(id string) string { return k.prefix + "agent:" + canonicalOr(id) }

// Inbox is the agent's regular message list.
func (k Keys) Inbox(id string) string { return k.prefix + "inbox:" + canonicalOr(id) }

// Urgent is the agent's urgent message list.
func (k Keys) Urgent(id string) string { return k.prefix + "urgent:" + canonicalOr(id) }

// Activity is the agent's activity log (newest first, at most 10).
func (k Keys) Activity(id string) string { return k.prefix + "activity:" + canonicalOr(id) }

// Stop is the agent's stop flag (a string with a TTL).
func (k Keys) Stop(id string) string { return k.prefix + "stop:" + canonicalOr(id) }

// Task is the task hash.
func (k Keys) Task(id string) string { return k.prefix + "task:" + canonicalOr(id) }

// Backlog is the list of unclaimed task ids.
func (k Keys) Backlog() string { return k.prefix + "backlog" }

// Events is the town event stream.
func (k Keys) Events() string { return k.prefix + "events" }

// EventsAgent is the per-agent event stream.
func (k Keys) EventsAgent(id string) string { return k.prefix + "events:agent:" + canonicalOr(id) }

// EventsMission is the per-mission event stream.
func (k Keys) EventsMission(id string) string {
	return k.prefix + "events:mission:" + canonicalOr(id)
}

// Broadcast is the (unused by tt) pub/sub channel.
func (k Keys) Broadcast() string { return k.prefix + "broadcast" }

// DocketTasks and DocketEvents are library-only streams of tt.
func (k Keys) DocketTasks() string  { return k.prefix + "docket:tasks" }
func (k Keys) DocketEvents() string { return k.prefix + "docket:events" }

// Mission is the MissionRun JSON string; the Mission* keys below are its parts.
func (k Keys) Mission(id string) string { return k.prefix + "mission:" + canonicalOr(id) }

// MissionWork, MissionWatch, MissionEvents (a list, not the event stream),
// MissionControl and MissionDispatchLock are the mission's subkeys.
func (k Keys) MissionWork(id string) string    { return k.Mission(id) + ":work" }
func (k Keys) MissionWatch(id string) string   { return k.Mission(id) + ":watch" }
func (k Keys) MissionEvents(id string) string  { return k.Mission(id) + ":events" }
func (k Keys) MissionControl(id string) string { return k.Mission(id) + ":control" }
func (k Keys) MissionDispatchLock(id string) string {
	return k.Mission(id) + ":dispatch_lock"
}

// MissionActive is the set of active mission ids.
func (k Keys) MissionActive() string { return k.prefix + "mission:active" }

// InFlight holds the messages taken from the agent's inbox and urgent list
// whose turn has no outcome yet (tthost only; see the package doc).
func (k Keys) InFlight(id string) string { return k.prefix + "tthost:inflight:" + canonicalOr(id) }

// DeadLetter holds JSON records of messages that could not be handled.
func (k Keys) DeadLetter(id string) string {
	return k.prefix + "tthost:deadletter:" + canonicalOr(id)
}

// Wake is the agent's wake signal: a list of at most one token that tthost
// writers push and a waiting worker BLPOPs.
func (k Keys) Wake(id string) string { return k.prefix + "tthost:wake:" + canonicalOr(id) }

// Runtime is the agent's runtime record (Store.Runtime): which backend
// serves it, its live session and steer mode.
func (k Keys) Runtime(id string) string { return k.prefix + "tthost:runtime:" + canonicalOr(id) }

// SessionRecord is where the agent's worker stands in its backend session
// (Store.SessionRecord): the session, the last event written, the running
// turn. A successor that reattaches to the session resumes from it.
func (k Keys) SessionRecord(id string) string { return k.prefix + "tthost:session:" + canonicalOr(id) }

// AgentPattern and TaskPattern are SCAN patterns for the agent and task
// hashes. Unlike tt, glob characters in the town name are escaped, so a town
// named "a*" does not list the agents of "ab".
func (k Keys) AgentPattern() string { return escapeGlob(k.prefix) + "agent:*" }
func (k Keys) TaskPattern() string  { return escapeGlob(k.prefix) + "task:*" }

// TownPattern matches every key of the town (what `tt reset` deletes).
func (k Keys) TownPattern() string { return escapeGlob(k.prefix) + "*" }

func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
