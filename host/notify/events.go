package notify

import (
	"strconv"

	"github.com/tthost/tthost/host/town"
)

// keyKind says how a watched key's events are read.
type keyKind int

const (
	kindQueue keyKind = iota // the inbox and the urgent list
	kindStop                 // the stop flag
	kindAgent                // the agent hash
	kindWake                 // tthost's wake list
)

// watchedKey is one key of an agent and how its events are read.
type watchedKey struct {
	key  string
	kind keyKind
}

// watchedKeys are the keys of agent that a Watch subscribes to.
func watchedKeys(keys town.Keys, agent string) []watchedKey {
	return []watchedKey{
		{keys.Inbox(agent), kindQueue},
		{keys.Urgent(agent), kindQueue},
		{keys.Stop(agent), kindStop},
		{keys.Agent(agent), kindAgent},
		{keys.Wake(agent), kindWake},
	}
}

// fleetKeys are the keys a serve host's claim loop watches: the wanted
// agents (a hash, read like an agent hash) and the fleet wake list.
func fleetKeys(keys town.Keys) []watchedKey {
	return []watchedKey{
		{keys.Wanted(), kindAgent},
		{keys.FleetWake(), kindWake},
	}
}

// keyspaceChannel is the channel Redis publishes key's events on.
func keyspaceChannel(db int, key string) string {
	return "__keyspace@" + strconv.Itoa(db) + "__:" + key
}

// Events that bring new content into a key: a list pushed onto, or any key
// renamed, copied or restored into place (tt's inbox cleanup rewrites the
// list; an operator may RESTORE one).
var (
	pushEvents    = set("lpush", "rpush", "linsert", "lset", "rename_to", "copy_to", "restore")
	removedEvents = set("del", "expired", "evicted", "rename_from")
	agentEvents   = set("hset", "hdel", "del", "expired", "evicted", "rename_from", "rename_to", "copy_to", "restore")
	wakeEvents    = set("lpush", "rpush")
)

// relevant says whether event on a key of kind k is a write its worker
// must see. The worker's own consumption is not: popping the inbox, taking
// the wake token, deleting the stop flag on exit, bumping its counters.
// LMOVE and RPOPLPUSH give their destination an lpush or rpush event.
func relevant(k keyKind, event string) bool {
	switch k {
	case kindQueue:
		return pushEvents[event]
	case kindStop:
		return !removedEvents[event]
	case kindAgent:
		return agentEvents[event]
	case kindWake:
		return wakeEvents[event]
	}
	return false
}

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}
