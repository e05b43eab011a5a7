package townredis

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"

	"github.com/tthost/tthost/host/notify"
)

// keyspaceEvents gives the embedded server Redis keyspace notifications,
// which miniredis (v2.40.0) does not have, so that a worker wakes for tt's
// writes on the embedded server as it does on redis-server
// (host/notify). A pre-command hook runs each command that has events
// itself, through the server's own dispatcher, and publishes the events
// Redis publishes for it, on the same channels with the same messages:
// __keyspace@0__:<key> → <event> with K, __keyevent@0__:<event> → <key>
// with E, for the classes enabled.
//
// It also answers CONFIG GET and CONFIG SET for notify-keyspace-events
// (the only parameter), so host/notify's detection treats the embedded
// server like any other. The flags start as notify.RequiredFlags.
//
// The emulation covers what tt and tthost write; where it differs from
// Redis it errs towards an extra event, never a missing one:
//
//   - events of the commands in eventsOf only (strings, lists, hashes and
//     generic commands; none for sets, sorted sets, streams, BLPOP, BRPOP,
//     LMPOP, BLMPOP);
//   - published in order by a goroutine of their own, after the command
//     ran (after EXEC for a transaction, after the script for EVAL), so a
//     subscriber that reacts sees the write; but the writer may get its
//     reply first (Redis publishes before it replies), and a subscription
//     made just after a write may still see that write's event. The events
//     of a script inside MULTI come before the transaction's others;
//   - an event even when the command failed or changed nothing (DEL of a
//     missing key, LPUSHX on none), and no del when a pop or HDEL empties
//     a key, no expired, no evicted;
//   - always database 0's channels: tthost and tt use database 0, and
//     host/notify's probe reports polling for a client on another one.
type keyspaceEvents struct {
	m   *miniredis.Miniredis
	srv *server.Server

	mu      sync.Mutex
	flags   string                     // as CONFIG GET reports it
	running map[*server.Peer]bool      // peers whose command the hook runs itself
	txs     map[*server.Peer]*txEvents // peers that used MULTI
	queue   []pubsubMessage            // events not yet published
	closed  bool

	wake chan struct{} // a message was queued
	stop chan struct{}
	done chan struct{} // the publisher returned
}

// txEvents holds a transaction's events until EXEC.
type txEvents struct {
	open   bool
	events []pubsubMessage
}

type pubsubMessage struct{ channel, message string }

// keyEvent is one event of a command: its key, its name and the class
// that enables it (a notify-keyspace-events flag).
type keyEvent struct {
	key, name string
	class     byte
}

func newKeyspaceEvents(m *miniredis.Miniredis) *keyspaceEvents {
	flags, _ := canonicalFlags(notify.RequiredFlags)
	k := &keyspaceEvents{
		m: m, srv: m.Server(),
		flags:   flags,
		running: map[*server.Peer]bool{},
		txs:     map[*server.Peer]*txEvents{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	k.srv.SetPreHook(k.hook)
	go k.publish()
	return k
}

// close stops the publisher; events still queued are dropped.
func (k *keyspaceEvents) close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.mu.Unlock()
	close(k.stop)
	<-k.done
}

// hook runs before every command, nested ones (from scripts) included.
// It returns true when it handled the command.
func (k *keyspaceEvents) hook(peer *server.Peer, cmd string, args ...string) bool {
	if cmd == "CONFIG" {
		k.config(peer, args)
		return true
	}
	events := eventsOf(cmd, args)
	tx := cmd == "MULTI" || cmd == "EXEC" || cmd == "DISCARD"
	if events == nil && !tx {
		return false
	}
	k.mu.Lock()
	if k.running[peer] {
		k.mu.Unlock()
		return false // our own Dispatch below: let the server run it
	}
	k.running[peer] = true
	k.mu.Unlock()

	k.srv.Dispatch(peer, append([]string{cmd}, args...))

	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.running, peer)
	t := k.txs[peer]
	switch cmd {
	case "MULTI":
		if t == nil {
			t = &txEvents{}
			k.txs[peer] = t
			// Runs on the peer's goroutine, like this hook.
			peer.OnDisconnect(func() {
				k.mu.Lock()
				delete(k.txs, peer)
				k.mu.Unlock()
			})
		}
		t.open, t.events = true, nil
	case "EXEC":
		if t != nil && t.open {
			k.enqueueLocked(t.events)
		}
		fallthrough
	case "DISCARD":
		if t != nil {
			t.open, t.events = false, nil
		}
	default:
		msgs := k.messagesLocked(events)
		if t != nil && t.open {
			t.events = append(t.events, msgs...) // queued, not run yet
		} else {
			k.enqueueLocked(msgs)
		}
	}
	return true
}

// messagesLocked turns events into pub/sub messages under the current flags.
func (k *keyspaceEvents) messagesLocked(events []keyEvent) []pubsubMessage {
	var out []pubsubMessage
	for _, e := range events {
		if !flagsEnable(k.flags, e.class) {
			continue
		}
		if strings.ContainsRune(k.flags, 'K') {
			out = append(out, pubsubMessage{"__keyspace@0__:" + e.key, e.name})
		}
		if strings.ContainsRune(k.flags, 'E') {
			out = append(out, pubsubMessage{"__keyevent@0__:" + e.name, e.key})
		}
	}
	return out
}

func (k *keyspaceEvents) enqueueLocked(msgs []pubsubMessage) {
	if len(msgs) == 0 || k.closed {
		return
	}
	k.queue = append(k.queue, msgs...)
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// publish publishes queued events in order. It runs apart from the hook
// because a script's commands run with the server locked, and Publish
// takes that lock: it publishes once the script is done.
func (k *keyspaceEvents) publish() {
	defer close(k.done)
	for {
		select {
		case <-k.stop:
			return
		case <-k.wake:
		}
		k.mu.Lock()
		batch := k.queue
		k.queue = nil
		k.mu.Unlock()
		for _, msg := range batch {
			k.m.Publish(msg.channel, msg.message)
		}
	}
}

// config answers CONFIG GET and CONFIG SET for notify-keyspace-events, in
// Redis's words.
func (k *keyspaceEvents) config(peer *server.Peer, args []string) {
	if len(args) == 0 {
		peer.WriteError("ERR wrong number of arguments for 'config' command")
		return
	}
	const param = "notify-keyspace-events"
	switch sub := strings.ToUpper(args[0]); sub {
	case "GET":
		if len(args) < 2 {
			peer.WriteError("ERR wrong number of arguments for 'config|get' command")
			return
		}
		match := false
		for _, pattern := range args[1:] {
			if ok, _ := path.Match(strings.ToLower(pattern), param); ok {
				match = true
			}
		}
		if !match {
			peer.WriteMapLen(0)
			return
		}
		k.mu.Lock()
		flags := k.flags
		k.mu.Unlock()
		peer.WriteMapLen(1)
		peer.WriteBulk(param)
		peer.WriteBulk(flags)
	case "SET":
		if len(args) < 3 || len(args)%2 == 0 {
			peer.WriteError("ERR wrong number of arguments for 'config|set' command")
			return
		}
		var flags string
		for i := 1; i < len(args); i += 2 {
			if !strings.EqualFold(args[i], param) {
				peer.WriteError(fmt.Sprintf("ERR Unknown option or number of arguments for CONFIG SET - '%s'", args[i]))
				return
			}
			f, err := canonicalFlags(args[i+1])
			if err != nil {
				peer.WriteError("ERR CONFIG SET failed (possibly related to argument '" + param + "') - " + err.Error())
				return
			}
			flags = f
		}
		k.mu.Lock()
		k.flags = flags
		k.mu.Unlock()
		peer.WriteOK()
	default:
		peer.WriteError(fmt.Sprintf("ERR CONFIG %s is not supported by tthost's embedded Redis: only CONFIG GET and CONFIG SET of %s", sub, param))
	}
}

// Flag letters of notify-keyspace-events, in the order Redis prints them.
const (
	flagClasses = "g$lshzxetd" // what A stands for
	flagOthers  = "n"          // new-key events: not part of A
	flagKinds   = "KEm"        // keyspace, keyevent, key-miss
)

// canonicalFlags validates a notify-keyspace-events value and writes it as
// Redis does (CONFIG GET "g$lhK" for "Kgl$h", "AK" for "KA").
func canonicalFlags(s string) (string, error) {
	has := map[rune]bool{}
	for _, r := range s {
		if r != 'A' && !strings.ContainsRune(flagClasses+flagOthers+flagKinds, r) {
			return "", errors.New("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.") // Redis's words
		}
		has[r] = true
	}
	var b strings.Builder
	all := has['A']
	if !all {
		all = true
		for _, r := range flagClasses {
			all = all && has[r]
		}
	}
	if all {
		b.WriteByte('A') // and, like Redis, no n after it: it prints n only without A
	} else {
		for _, r := range flagClasses + flagOthers {
			if has[r] {
				b.WriteRune(r)
			}
		}
	}
	for _, r := range flagKinds {
		if has[r] {
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// flagsEnable says whether canonical flags enable events of class.
func flagsEnable(flags string, class byte) bool {
	return strings.IndexByte(flags, class) >= 0 ||
		strings.IndexByte(flags, 'A') >= 0 && strings.IndexByte(flagClasses, class) >= 0
}

// eventsOf returns the keyspace events Redis publishes for cmd (upper
// case) with args, for the commands the embedded server emulates; nil for
// the others. A command with too few arguments has none (it fails).
func eventsOf(cmd string, args []string) []keyEvent {
	one := func(name string, class byte) []keyEvent {
		if len(args) == 0 {
			return nil
		}
		return []keyEvent{{args[0], name, class}}
	}
	each := func(keys []string, name string, class byte) []keyEvent {
		var out []keyEvent
		for _, key := range keys {
			out = append(out, keyEvent{key, name, class})
		}
		return out
	}
	switch cmd {
	case "LPUSH", "LPUSHX":
		return one("lpush", 'l')
	case "RPUSH", "RPUSHX":
		return one("rpush", 'l')
	case "LINSERT", "LSET", "LREM", "LTRIM", "LPOP", "RPOP":
		return one(strings.ToLower(cmd), 'l')
	case "RPOPLPUSH", "BRPOPLPUSH":
		if len(args) < 2 {
			return nil
		}
		// Redis publishes the destination's push first.
		return []keyEvent{{args[1], "lpush", 'l'}, {args[0], "rpop", 'l'}}
	case "LMOVE", "BLMOVE":
		if len(args) < 4 {
			return nil
		}
		from, to := strings.ToLower(args[2]), strings.ToLower(args[3])
		if (from != "left" && from != "right") || (to != "left" && to != "right") {
			return nil
		}
		return []keyEvent{{args[1], to[:1] + "push", 'l'}, {args[0], from[:1] + "pop", 'l'}}
	case "HSET", "HMSET", "HSETNX":
		return one("hset", 'h')
	case "HDEL", "HINCRBY", "HINCRBYFLOAT":
		return one(strings.ToLower(cmd), 'h')
	case "SET":
		ev := one("set", '$')
		if len(args) > 2 {
			for _, opt := range args[2:] {
				switch strings.ToUpper(opt) {
				case "EX", "PX", "EXAT", "PXAT":
					return append(ev, keyEvent{args[0], "expire", 'g'})
				}
			}
		}
		return ev
	case "SETEX", "PSETEX":
		if len(args) == 0 {
			return nil
		}
		return []keyEvent{{args[0], "set", '$'}, {args[0], "expire", 'g'}}
	case "SETNX", "GETSET":
		return one("set", '$')
	case "MSET":
		var keys []string
		for i := 0; i+1 < len(args); i += 2 {
			keys = append(keys, args[i])
		}
		return each(keys, "set", '$')
	case "INCR", "INCRBY", "DECR", "DECRBY":
		return one("incrby", '$')
	case "INCRBYFLOAT", "APPEND":
		return one(strings.ToLower(cmd), '$')
	case "GETDEL":
		return one("del", 'g')
	case "DEL", "UNLINK":
		return each(args, "del", 'g')
	case "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT":
		return one("expire", 'g')
	case "PERSIST":
		return one("persist", 'g')
	case "RENAME", "RENAMENX":
		if len(args) < 2 {
			return nil
		}
		return []keyEvent{{args[0], "rename_from", 'g'}, {args[1], "rename_to", 'g'}}
	}
	return nil
}
