package notify_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
)

// hookEvents returns a channel of n's test hook events.
func hookEvents(n *notify.Notifier) <-chan string {
	ch := make(chan string, 16)
	notify.SetTestHook(n, func(event string) {
		select {
		case ch <- event:
		default:
		}
	})
	return ch
}

func waitHook(t *testing.T, events <-chan string, want string) {
	t.Helper()
	deadline := time.After(eventWait)
	for {
		select {
		case ev := <-events:
			if ev == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %v", want, eventWait)
		}
	}
}

// TestWatchFiresAfterTheServerRestarts: a server killed with SIGKILL and
// started again has lost its data and the CONFIG SET that turned the
// notifications on. The watch fires once the connection is back (a write
// made meanwhile is not missed), and writes after that fire it again.
func TestWatchFiresAfterTheServerRestarts(t *testing.T) {
	ctx := ctxFor(t)
	r := testenv.StartRedis(t) // without notifications: Ensure turns them on
	n := newNotifier(t, r.Client, notify.Options{})
	if st := n.Status(); st.Mode != notify.ModeKeyspace || !st.Enabled {
		t.Fatalf("status %s, want keyspace enabled by tthost", st)
	}
	hooks := hookEvents(n)
	agent := town.NewID()
	w := watch(t, n, agent)

	r.Restart() // SIGKILL, then a new server on the same socket
	// Written before the Notifier is back, with no notifications on.
	if err := r.Client.RPush(ctx, keys.Inbox(agent), "during").Err(); err != nil {
		t.Fatal(err)
	}
	waitFire(t, w, "a write made while the Notifier reconnected")
	waitHook(t, hooks, "resync")
	if st := n.Status(); st.Mode != notify.ModeKeyspace || !st.Enabled {
		t.Fatalf("status after the restart %s, want keyspace enabled again", st)
	}

	// Drained after the resync: the next value is the next write's.
	select {
	case <-w.C():
	default:
	}
	if err := r.Client.LPush(ctx, keys.Urgent(agent), "after").Err(); err != nil {
		t.Fatal(err)
	}
	waitFire(t, w, "a write after the reconnect")

	// A watch made after the restart works too.
	other := town.NewID()
	w2 := watch(t, n, other)
	r.Client.SetEx(ctx, keys.Stop(other), "1", time.Hour)
	waitFire(t, w2, "a stop after the restart")
}

// TestWatchFiresWhenTheServerComesBackAfterAnOutage: the server stays
// gone while the Notifier tries to reconnect; when it is back, the watch
// fires and the notifications are on again.
func TestWatchFiresWhenTheServerComesBackAfterAnOutage(t *testing.T) {
	ctx := ctxFor(t)
	r := testenv.StartRedis(t)
	n := newNotifier(t, r.Client, notify.Options{})
	hooks := hookEvents(n)
	agent := town.NewID()
	w := watch(t, n, agent)

	r.Kill9()
	waitHook(t, hooks, "down") // it tried, and found no server
	r.Restart()
	waitHook(t, hooks, "resync")
	waitFire(t, w, "the server came back")
	if st := n.Status(); st.Mode != notify.ModeKeyspace || !st.Enabled {
		t.Fatalf("status after the outage %s, want keyspace enabled again", st)
	}
	select {
	case <-w.C():
	default:
	}
	r.Client.HSet(ctx, keys.Agent(agent), "state", "paused")
	waitFire(t, w, "a pause after the outage")
}

// TestASilentConnectionIsReplaced: a server that stops answering without
// closing the socket (SIGSTOP, as a dropped network path looks) is found
// by the health PING; the watch fires when it answers again.
func TestASilentConnectionIsReplaced(t *testing.T) {
	ctx := ctxFor(t)
	r := testenv.StartRedis(t)
	n := newNotifier(t, r.Client, notify.Options{HealthInterval: 100 * time.Millisecond})
	hooks := hookEvents(n)
	agent := town.NewID()
	w := watch(t, n, agent)

	if err := syscall.Kill(r.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(r.Pid(), syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	waitHook(t, hooks, "silent")
	resume()
	waitHook(t, hooks, "resync")
	waitFire(t, w, "the connection came back")
	select {
	case <-w.C():
	default:
	}
	r.Client.RPush(ctx, keys.Inbox(agent), "m")
	waitFire(t, w, "a write on the new connection")
}

// TestCloseLeavesNothingRunning: after Close no goroutine of the package
// is left, Watch fails with ErrClosed, and closing twice is harmless.
func TestCloseLeavesNothingRunning(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			c := srv.start(t)
			n, err := notify.New(ctxFor(t), c, keys, notify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			w, err := n.Watch(ctxFor(t), town.NewID())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Watch(ctxFor(t), town.NewID()); err != nil {
				t.Fatal(err)
			}
			if err := n.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			n.Close()
			w.Close() // after the Notifier: harmless
			if _, err := n.Watch(ctxFor(t), town.NewID()); !errors.Is(err, notify.ErrClosed) {
				t.Fatalf("Watch after Close: %v, want ErrClosed", err)
			}
			expectNoGoroutines(t)
		})
	}
}

// TestWatchGivesUpWhenItsContextEnds: with the server gone, Watch keeps
// trying until its context ends, and leaves nothing behind.
func TestWatchGivesUpWhenItsContextEnds(t *testing.T) {
	r := testenv.StartRedis(t)
	n, err := notify.New(ctxFor(t), r.Client, keys, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Kill9()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := n.Watch(ctx, town.NewID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch with the server gone: %v, want the context's deadline", err)
	}
	n.Close()
	expectNoGoroutines(t)
}

// TestCloseEndsAWatchThatWaitsForTheServer: whatever a Watch is doing
// while the server is gone, Close ends it with ErrClosed.
func TestCloseEndsAWatchThatWaitsForTheServer(t *testing.T) {
	r := testenv.StartRedis(t)
	n, err := notify.New(ctxFor(t), r.Client, keys, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Kill9()
	done := make(chan error, 1)
	go func() {
		_, err := n.Watch(context.Background(), town.NewID())
		done <- err
	}()
	n.Close()
	select {
	case err := <-done:
		if !errors.Is(err, notify.ErrClosed) {
			t.Fatalf("Watch: %v, want ErrClosed", err)
		}
	case <-time.After(eventWait):
		t.Fatal("Watch did not return after Close")
	}
	expectNoGoroutines(t)
}

func TestPolicyOffOpensNothing(t *testing.T) {
	c := startEmbedded(t)
	n, err := notify.New(ctxFor(t), c, keys, notify.Options{Policy: notify.PolicyOff})
	if err != nil {
		t.Fatal(err)
	}
	if n.Mode() != notify.ModePoll {
		t.Fatalf("mode %s under policy off", n.Status())
	}
	w, err := n.Watch(ctxFor(t), town.NewID())
	if err != nil || w == nil {
		t.Fatalf("Watch in poll mode: %v", err)
	}
	if got := c.PubSubNumSub(ctxFor(t)).Val(); len(got) != 0 {
		t.Errorf("subscriptions in poll mode: %v", got)
	}
	w.Close()
	n.Close()
	expectNoGoroutines(t)
}

// expectNoGoroutines fails when a goroutine of this package is still
// running. A goroutine that has returned from the package but not yet
// exited is let run (there is no event for a goroutine's end): the check
// yields to the scheduler between looks instead of sleeping.
func expectNoGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for range 10000 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "host/notify.(*") {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("goroutines of the notify package are left:\n%s", stacks)
}
