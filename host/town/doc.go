// Package town is tthost's Redis store: the agents, messages, tasks,
// backlog, control flags, activity logs and events of one town, in the exact
// Redis format of Tinytown (`tt`), so tthost and tt can serve the same town
// side by side. The format is described in docs/compatibility.md; this
// package is its single Go implementation.
//
// # Where to start
//
// New(rdb, town) returns a Store. Keys builds every key name. The files are
// split by concern:
//
//	store.go     Store, options, the shared single-field update script, SCAN
//	keys.go      key names (tt's, plus tthost's own under tt:{town}:tthost:)
//	ids.go       UUID ids: canonical form, lenient parsing, supervisor, short id
//	times.go     RFC 3339 timestamps as tt writes and reads them
//	record.go    reading hash fields, reporting bad values (FieldProblem)
//	agent.go     agent hashes: create, read, list, single-field updates
//	resolve.go   agent references (name, nickname, label, short id, UUID)
//	nicknames.go default nicknames
//	message.go   message JSON, byte-for-byte as tt's serde writes it
//	jsonenc.go   serde_json-compatible string escaping
//	classify.go  how a worker treats a message; summaries and inbox prefixes
//	queue.go     send, wake, intake, in-flight, ack, requeue, dead letters
//	lease.go     worker leases: generations, fencing tokens, the last holder
//	worker.go    the lease holder's fenced message moves (+ re-route)
//	outage.go    OutageHook: a worker's commands ride out a Redis outage
//	waiting.go   an agent's urgent, inbox and in-flight messages in one read
//	control.go   stop flag and activity log
//	task.go      task hashes and their transitions; tt assign
//	backlog.go   the backlog, atomic claims and role matching
//	events.go    event streams: emit, read, follow
//	errors.go    sentinel errors (test with errors.Is)
//
// # Compatibility rules
//
// Keys, field names, encodings and message JSON are tt's (golden tests pin
// them). Where tt is unsafe, tthost does better without changing the format:
//
//   - Records are never rewritten whole. Updates are single HSET/HDEL/HINCRBY
//     operations run by a script that first checks that the hash exists
//     (so an update racing a delete never leaves a partial hash) and can
//     compare-and-set (e.g. "idle unless paused").
//   - Bad stored values are never silently replaced by "now": records carry
//     a Problems list and keep the zero time.
//   - Listing uses SCAN, not KEYS, and skips keys it cannot read instead of
//     failing. tthost never creates keys under agent:* or task:*.
//
// # No message is lost
//
// tt LPOPs messages and loses them if the worker dies mid-turn. In tthost a
// message leaves the inbox or the urgent list only through Intake, a Lua
// script that moves it atomically to the agent's in-flight list
// tt:{town}:tthost:inflight:{id}. It leaves that list only when its turn has
// an outcome: Ack (handled), Requeue (back to the front of its list, in
// order) or DeadLetter (moved, with its raw bytes and the reason, to
// tt:{town}:tthost:deadletter:{id}). After a crash, InFlight returns what
// must be delivered again.
//
// # Fencing
//
// One worker serves an agent at a time: it holds the agent's lease
// tt:{town}:tthost:lease:{id}, whose token "<generation>-<random>" changes at
// every acquisition. A worker moves messages only through the lease's
// Worker, whose scripts refuse (ErrFenced) unless the lease key still
// carries its token: a worker that was frozen past its lease and another
// took over cannot ack, requeue or take anything, however late it acts.
// The Store's own Intake, Ack, Requeue and DeadLetter are unfenced, for
// tools and tests.
//
// An in-flight element is the message JSON exactly as it was in its list,
// prefixed with a two-byte tag: "u:" for the urgent list, "n:" for the inbox.
// DecodeEntry reads one; an element with neither tag is kept whole.
//
// Urgent messages are read from the right of the urgent list: tt LPUSHes
// them, so this delivers them oldest first (tt delivers them newest first).
//
// # Waking a worker
//
// Every tthost writer (Send, SendUrgent, Assign, BacklogClaim, Requeue,
// RequestStop, Wake) also pushes a token onto tt:{town}:tthost:wake:{id}
// (at most one, one-hour TTL) in the same transaction. A waiting worker
// blocks in WaitWake (BLPOP) and starts within milliseconds; Intake deletes
// the token. tt itself sends no token, so a worker also polls: WaitWake's
// timeout is that slow safety poll. Package host/notify sees tt's writes
// as they happen, through keyspace notifications, where the server has
// them.
//
// All tthost keys live under tt:{town}:tthost:, which tt never lists but
// `tt reset` (SCAN tt:{town}:*) still deletes.
//
// # Differences a tt user can see
//
//   - Nicknames of agents spawned by tthost come from tthost's own name
//     lists (tt's index formula, different names); see Nickname.
//   - Events may carry tthost detail in "scope" and in an extra "tthost"
//     object, which tt ignores.
//
// Only a standalone Redis (or a single primary) is supported, as in tt.
package town
