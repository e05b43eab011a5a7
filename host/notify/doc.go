// Package notify tells a waiting worker, within milliseconds, that someone
// wrote to one of its agent's keys, including writers that send no wake
// signal: Tinytown's `tt send` (LPUSH/RPUSH of the inbox), `tt send
// --urgent` (LPUSH of the urgent list), `tt stop` (SETEX of the stop flag)
// and `tt interrupt`/`tt resume` (HSET of the agent hash). It does so with
// Redis keyspace notifications, where the server has them or lets tthost
// turn them on, and says so honestly where it cannot: then the caller
// polls.
//
// # Where to start
//
// New runs Ensure and, when keyspace notifications work, opens one pub/sub
// connection for the whole process. Watch(agent) subscribes to that agent's
// keys and returns once the server has confirmed the subscription; its C()
// fires when a relevant write happens. Mode says which path the town is on.
//
//	doc.go       this overview
//	ensure.go    Ensure: detect, enable (CONFIG SET) and verify with a probe; Status, Mode, Policy
//	flags.go     the notify-keyspace-events flags tthost needs
//	events.go    which keys of an agent are watched, and which events count as a write
//	notifier.go  Notifier and Watch: subscribing, PING barriers, closing
//	receive.go   the receive loop: events to watches, health checks, reconnects
//
// # What a watch guarantees
//
// A Watch subscribes (SUBSCRIBE, not a town-wide PSUBSCRIBE) to the
// channels __keyspace@<db>__:<key> of the agent's inbox, urgent list, stop
// flag, agent hash and tthost wake list. Watch returns only after the
// server has applied the subscription, so every relevant write that
// commits after Watch returns is followed by a value on C that the caller
// receives after that write committed: a caller that reads Redis after
// every receive never misses one. C has capacity 1 and coalesces: many
// writes may give one value. Values may be spurious (the worker's own
// writes to its agent hash, a reconnect); they carry nothing but "look
// again".
//
// Events that are a worker's own consumption do not fire: only pushes
// count on the lists (lpush, rpush, linsert, lset, and a key renamed,
// copied or restored into place), not pops, trims or deletes; on the stop
// flag anything but its removal (del, expired, evicted, renamed away); on
// the agent hash hset, hdel and the hash's removal (a deleted agent
// matters; hincrby does not, so counters do not wake anyone).
//
// # Connection loss
//
// go-redis reconnects the pub/sub connection and subscribes again by
// itself. When the Notifier sees the connection fail, it waits for the new
// one (a PING barrier behind the resubscription), runs Ensure again (a
// restarted server has forgotten a CONFIG SET) and then fires every watch
// once, because a write may have happened while nobody listened. A
// connection that goes silent without an error is found by a PING after
// Options.HealthInterval without traffic and replaced.
//
// # Why PING barriers
//
// A SUBSCRIBE's confirmation (a *redis.Subscription in the Receive loop)
// names only the channel: after a channel is unsubscribed and subscribed
// again, or resubscribed on a new connection, it cannot say which command
// it answers. A PING with a unique payload, sent after the SUBSCRIBE on
// the same connection, is answered after it, so its PONG proves the
// subscription is in place.
//
// # Servers
//
// tthost's own servers start with notifications on (see host/townredis):
// redis-server with --notify-keyspace-events, the embedded server by
// emulating the events of the commands tt and tthost use. On an external
// Redis, Ensure turns them on when CONFIG SET is permitted (adding to the
// flags set, never removing any) unless [tthost] notifications = "off".
// Every path is verified end to end by a probe, because a proxy or a
// managed service may accept CONFIG SET and still not deliver the events.
// docs/notifications.md is the user's guide.
package notify
