package notify

import "strings"

// RequiredFlags are the notify-keyspace-events flags a Notifier needs: K
// (events on __keyspace@<db>__:<key> channels) and the classes of what it
// watches: g (generic: del, expire, rename), $ (strings: the stop flag),
// l (lists: inbox, urgent list, wake list) and h (hashes: the agent).
//
// They leave out E (a second, keyevent, channel per event: twice the work
// for nothing tthost reads), x and e (expired and evicted keys: not a
// write anyone waits for), t (streams: every event tthost emits would
// publish one), s and z (sets and sorted sets tthost does not watch), n
// (every new key) and m (every key miss: one per cache miss).
const RequiredFlags = "Kg$lh"

// allClasses are the classes the flag A stands for.
const allClasses = "g$lshzxetd"

// MissingFlags returns the flags of RequiredFlags that current (a
// notify-keyspace-events value) lacks, in RequiredFlags' order; "" when
// none is missing. A in current stands for every class.
func MissingFlags(current string) string {
	var b strings.Builder
	for _, f := range RequiredFlags {
		if strings.ContainsRune(current, f) {
			continue
		}
		if strings.ContainsRune(allClasses, f) && strings.ContainsRune(current, 'A') {
			continue
		}
		b.WriteRune(f)
	}
	return b.String()
}
