package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnableKeyspaceEvents turns on keyspace notifications for every key class
// ("KA", added to what is set) on a test's private server, so that
// WatchKeyspace sees every write whoever makes it.
func EnableKeyspaceEvents(t testing.TB, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	cur, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		t.Fatalf("read notify-keyspace-events: %v", err)
	}
	flags := cur["notify-keyspace-events"]
	for _, f := range "KA" {
		if !strings.ContainsRune(flags, f) {
			flags += string(f)
		}
	}
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", flags).Err(); err != nil {
		t.Fatalf("enable keyspace notifications: %v", err)
	}
}

// WatchKeyspace reports every keyspace event of a key under prefix on a
// coalescing channel until the test ends: a test re-checks what it waits
// for in Redis on each value instead of polling. The subscription is in
// place when it returns; go-redis renews it after a reconnect (a restarted
// server), and each renewal counts as a change, since writes may have been
// missed meanwhile. The server must publish the events (see
// EnableKeyspaceEvents, or a tthost process that turned them on).
func WatchKeyspace(t testing.TB, rdb *redis.Client, prefix string) <-chan struct{} {
	t.Helper()
	changed, stop, err := SubscribeKeyspace(context.Background(), rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return changed
}

// SubscribeKeyspace is WatchKeyspace for a caller that ends the
// subscription itself (stop) before the test ends, e.g. once per
// benchmark iteration.
func SubscribeKeyspace(ctx context.Context, rdb *redis.Client, prefix string) (changed <-chan struct{}, stop func(), err error) {
	ps := rdb.PSubscribe(ctx, "__keyspace@*__:"+prefix+"*")
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, nil, fmt.Errorf("subscribe to the keyspace events of %s*: %w", prefix, err)
	}
	out := make(chan struct{}, 1)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		msgs := ps.ChannelWithSubscriptions()
		for {
			select {
			case <-quit:
				return
			case <-msgs:
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { close(quit); <-done; _ = ps.Close() }) }, nil
}

// Merge reports a value of any of chans on one coalescing channel until
// the test ends.
func Merge(t testing.TB, chans ...<-chan struct{}) <-chan struct{} {
	out := make(chan struct{}, 1)
	Forward(t, out, chans...)
	return out
}

// Forward passes every value of chans on to out (a coalescing channel of
// capacity 1, which may have other writers) until the test ends.
func Forward(t testing.TB, out chan struct{}, chans ...<-chan struct{}) {
	stop := make(chan struct{})
	for _, c := range chans {
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-c:
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop) })
}

// WaitFor checks cond, then again each time changed fires, until it holds;
// it reports whether it held within timeout. changed must fire after every
// change that can make cond true (WatchKeyspace, WatchDir, Merge).
func WaitFor(changed <-chan struct{}, timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// WaitAllExit waits until every process of pids has exited (WaitExit, on
// pidfds) and returns those still alive after timeout.
func WaitAllExit(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	var left []int
	for _, p := range pids {
		if !WaitExit(p, max(time.Until(deadline), 0)) {
			left = append(left, p)
		}
	}
	return left
}
