package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/town"
)

// DefaultHealthInterval is how long the pub/sub connection may be quiet
// before the Notifier pings it. Without an answer within another interval
// it replaces the connection: a peer that vanished without closing the
// socket (a dropped network path) gives no error otherwise.
const DefaultHealthInterval = 15 * time.Second

// Reconnect back-off bounds: quick enough that a restarted local server is
// back within a second, slow enough not to spin while it is gone.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

// ErrClosed is returned by Watch once the Notifier is closed.
var ErrClosed = errors.New("notify: the notifier is closed")

// errReconnected fails a barrier whose PING may have gone out on a
// connection that was lost; the caller subscribes and pings again.
var errReconnected = errors.New("notify: the pub/sub connection was lost")

// Options tune a Notifier.
type Options struct {
	// Policy is [tthost] notifications: PolicyAuto ("" too) or PolicyOff.
	Policy Policy
	// ProbeTimeout is Ensure's; DefaultProbeTimeout when 0.
	ProbeTimeout time.Duration
	// HealthInterval is DefaultHealthInterval when 0.
	HealthInterval time.Duration
	// Log gets reconnects and mode changes; nil discards them.
	Log hclog.Logger
}

func (o Options) ensure() EnsureOptions {
	return EnsureOptions{Policy: o.Policy, ProbeTimeout: o.ProbeTimeout}
}

// Notifier owns one pub/sub connection for a process and the watches of
// every agent the process serves. Its methods are safe for concurrent use.
type Notifier struct {
	rdb  redis.UniversalClient
	keys town.Keys
	db   int
	opts Options
	log  hclog.Logger
	live bool // keyspace mode at New: a connection and a receive loop exist

	// subMu orders what the Notifier sends (SUBSCRIBE, UNSUBSCRIBE, PING)
	// together with the bookkeeping it reflects, and guards ps, which
	// the receive loop replaces when the connection goes silent.
	subMu sync.Mutex
	ps    *redis.PubSub

	mu       sync.Mutex
	status   Status
	chans    map[string]*channelWatches // subscribed channel → its watches
	watches  map[*Watch]struct{}
	barriers map[string]chan error // PING payload → the Watch call waiting for its PONG
	seq      uint64
	closed   bool
	hook     func(event string) // tests: "replace" and "resync" as they happen

	stop context.CancelFunc
	done chan struct{} // closed when the receive loop has returned
}

// channelWatches are the watches of one keyspace channel.
type channelWatches struct {
	kind    keyKind
	watches map[*Watch]struct{}
}

// New runs Ensure on rdb's server and returns a Notifier for the town of
// keys. In ModeKeyspace it starts a receive loop on one pub/sub connection
// (the connection is made at once, the channels as agents are watched);
// in ModePoll it opens nothing and its watches never fire.
//
// The error is Ensure's: the server could not be asked. A server that
// refuses CONFIG or does not deliver events gives a Notifier in ModePoll.
// Close releases the connection and the loop.
func New(ctx context.Context, rdb redis.UniversalClient, keys town.Keys, opts Options) (*Notifier, error) {
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	log := opts.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	st, err := Ensure(ctx, rdb, keys, opts.ensure())
	if err != nil {
		return nil, err
	}
	n := &Notifier{
		rdb: rdb, keys: keys, db: dbOf(rdb), opts: opts, log: log,
		status:   st,
		chans:    map[string]*channelWatches{},
		watches:  map[*Watch]struct{}{},
		barriers: map[string]chan error{},
		done:     make(chan struct{}),
	}
	if st.Mode != ModeKeyspace {
		close(n.done)
		return n, nil
	}
	n.live = true
	n.ps = rdb.Subscribe(context.WithoutCancel(ctx))
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stop = cancel
	go n.run(loopCtx)
	return n, nil
}

// Status is what the last Ensure found: at New, and again after every
// reconnect (a restarted server forgets a CONFIG SET, so the Notifier sets
// it again; a server that came back without notifications turns the mode
// to ModePoll).
func (n *Notifier) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Mode is Status().Mode. It can change after a reconnect: a caller that
// tunes its polling by it reads it again when a watch fires.
func (n *Notifier) Mode() Mode { return n.Status().Mode }

// Watch subscribes to the keyspace channels of agent's inbox, urgent
// list, stop flag, agent hash and wake list (agent is an id, canonicalised
// as town.Keys does) and returns once the server has applied the
// subscription: a write that commits after Watch returns fires the watch.
// While the connection is down Watch keeps trying until ctx ends. In
// ModePoll it returns at once a watch that never fires. Several watches of
// one agent may coexist; each gets every event. Close every watch.
func (n *Notifier) Watch(ctx context.Context, agent string) (*Watch, error) {
	if strings.TrimSpace(agent) == "" {
		return nil, errors.New("notify: Watch needs an agent id")
	}
	return n.watch(ctx, "agent "+agent, watchedKeys(n.keys, agent))
}

// WatchFleet subscribes to what a serve host's claim loop waits for: a
// change of the town's wanted agents (tthost spawn, adopt, stop) and a
// push to the fleet wake list (a host that released agents). It
// guarantees what Watch does.
func (n *Notifier) WatchFleet(ctx context.Context) (*Watch, error) {
	return n.watch(ctx, "the fleet", fleetKeys(n.keys))
}

func (n *Notifier) watch(ctx context.Context, what string, keys []watchedKey) (*Watch, error) {
	w := &Watch{n: n, c: make(chan struct{}, 1)}
	for _, k := range keys {
		w.channels = append(w.channels, keyspaceChannel(n.db, k.key))
	}

	n.subMu.Lock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.subMu.Unlock()
		return nil, ErrClosed
	}
	n.watches[w] = struct{}{}
	var fresh []string
	if n.live {
		for i, k := range keys {
			ch := w.channels[i]
			cw := n.chans[ch]
			if cw == nil {
				cw = &channelWatches{kind: k.kind, watches: map[*Watch]struct{}{}}
				n.chans[ch] = cw
				fresh = append(fresh, ch)
			}
			cw.watches[w] = struct{}{}
		}
	}
	n.mu.Unlock()
	var err error
	if len(fresh) > 0 {
		err = n.subscribeLocked(ctx, fresh)
	}
	n.subMu.Unlock()
	if !n.live {
		return w, nil
	}

	// Even without fresh channels: another Watch may have sent their
	// SUBSCRIBE and not yet seen it applied.
	var backoff time.Duration
	for {
		if err == nil {
			err = n.barrier(ctx)
		}
		if err == nil {
			return w, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", what, err)
		}
		n.log.Debug("subscribe again", "watch", what, "error", err)
		backoff = nextBackoff(backoff)
		if !sleep(ctx, backoff) {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", what, ctx.Err())
		}
		n.subMu.Lock()
		if n.isClosed() {
			n.subMu.Unlock()
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", what, ErrClosed)
		}
		err = n.subscribeLocked(ctx, w.channels) // SUBSCRIBE is idempotent
		n.subMu.Unlock()
	}
}

func (n *Notifier) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// Close stops the receive loop, closes the connection and every watch,
// and waits for the loop to return. Later calls do nothing.
func (n *Notifier) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.failBarriersLocked(ErrClosed)
	clear(n.watches)
	clear(n.chans)
	n.mu.Unlock()
	if !n.live {
		return nil
	}
	n.stop()
	n.subMu.Lock()
	err := n.ps.Close() // ends a blocked receive
	n.subMu.Unlock()
	<-n.done
	return err
}

// Watch is one subscription to an agent's keys. See Notifier.Watch.
type Watch struct {
	n        *Notifier
	channels []string
	c        chan struct{}
	once     sync.Once
}

// C receives a value after relevant writes: capacity 1, coalescing, never
// closed. Read Redis after each receive; values may be spurious.
func (w *Watch) C() <-chan struct{} { return w.c }

// Active reports whether keyspace notifications reach the watch now (the
// Notifier's Mode is ModeKeyspace).
func (w *Watch) Active() bool { return w.n.Mode() == ModeKeyspace }

// String says which path the town is on, for logs.
func (w *Watch) String() string { return w.n.Status().String() }

// Close ends the watch: its channels are unsubscribed once no other watch
// needs them, and C gets no more values. Later calls do nothing.
func (w *Watch) Close() {
	w.once.Do(func() { w.n.unwatch(w) })
}

func (w *Watch) fire() {
	select {
	case w.c <- struct{}{}:
	default: // a value is pending: it covers this write too
	}
}

func (n *Notifier) unwatch(w *Watch) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	n.mu.Lock()
	delete(n.watches, w)
	var gone []string
	for _, ch := range w.channels {
		cw := n.chans[ch]
		if cw == nil {
			continue
		}
		delete(cw.watches, w)
		if len(cw.watches) == 0 {
			delete(n.chans, ch)
			gone = append(gone, ch)
		}
	}
	closed := n.closed
	n.mu.Unlock()
	if len(gone) > 0 && !closed {
		// go-redis forgets the channels before it sends the command, so
		// after an error no reconnect subscribes them again.
		_ = n.ps.Unsubscribe(context.Background(), gone...)
	}
}

// subscribeLocked sends SUBSCRIBE; the caller holds subMu. go-redis records
// the channels even when the write fails, but a reconnect made inside that
// failing call resubscribes only the channels recorded before it: a
// second attempt closes that gap (it either reaches the new connection or
// fails into a reconnect that includes them).
func (n *Notifier) subscribeLocked(ctx context.Context, chans []string) error {
	if err := n.ps.Subscribe(ctx, chans...); err == nil {
		return nil
	}
	return n.ps.Subscribe(ctx, chans...)
}

// barrier sends a PING with a unique payload and waits for its PONG, which
// the server sends after it applied every command sent before it.
func (n *Notifier) barrier(ctx context.Context) error {
	done := make(chan error, 1)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	token := n.tokenLocked("watch")
	n.barriers[token] = done
	n.mu.Unlock()
	if err := n.ping(ctx, token); err != nil {
		n.dropBarrier(token)
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		n.dropBarrier(token)
		return ctx.Err()
	}
}

func (n *Notifier) dropBarrier(token string) {
	n.mu.Lock()
	delete(n.barriers, token)
	n.mu.Unlock()
}

func (n *Notifier) failBarriersLocked(err error) {
	for token, done := range n.barriers {
		done <- err
		delete(n.barriers, token)
	}
}

func (n *Notifier) tokenLocked(kind string) string {
	n.seq++
	return "tthost-notify:" + kind + ":" + strconv.FormatUint(n.seq, 10)
}

func (n *Notifier) pubsub() *redis.PubSub {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	return n.ps
}

func (n *Notifier) ping(ctx context.Context, payload string) error {
	return n.pubsub().Ping(ctx, payload)
}
