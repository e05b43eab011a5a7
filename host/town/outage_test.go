package town

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A server that stops answering (SIGSTOP: the socket stays, replies do not
// come) is ridden out: the command completes once it answers again, and the
// outage is reported once down and once up.
func TestOutageHookRidesOutAServerThatStopsAnswering(t *testing.T) {
	f := newFixture(t)
	var downs, ups atomic.Int32
	wentDown := make(chan struct{})
	h := &OutageHook{Bound: time.Minute,
		OnDown: func(error) {
			if downs.Add(1) == 1 {
				close(wentDown)
			}
		},
		OnUp: func(time.Duration) { ups.Add(1) }}
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: f.redis.Socket, ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(h)
	f.must(c.Ping(f.ctx).Err())

	f.must(syscall.Kill(f.redis.Pid(), syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(f.redis.Pid(), syscall.SIGCONT) })
	done := make(chan error, 1)
	go func() { done <- c.Set(f.ctx, "k", "v", 0).Err() }()
	select {
	case <-wentDown:
	case err := <-done:
		t.Fatalf("SET returned %v while the server was stopped", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the outage was never reported")
	}
	if down, _ := h.Down(); !down {
		t.Error("Down() = false during the outage")
	}
	f.must(syscall.Kill(f.redis.Pid(), syscall.SIGCONT))
	if err := <-done; err != nil {
		t.Fatalf("SET across the outage: %v", err)
	}
	if v := f.rdb.Get(f.ctx, "k").Val(); v != "v" {
		t.Errorf("k = %q after the outage", v)
	}
	if downs.Load() != 1 || ups.Load() != 1 {
		t.Errorf("reported down %d and up %d times; want once each", downs.Load(), ups.Load())
	}
}

func TestOutageHookGivesUpAfterItsBound(t *testing.T) {
	h := &OutageHook{Bound: 300 * time.Millisecond}
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: "/nonexistent/redis.sock", MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(h)
	start := time.Now()
	err := c.Set(context.Background(), "k", "v", 0).Err()
	if !errors.Is(err, ErrRedisOutage) {
		t.Fatalf("SET with no server: %v; want ErrRedisOutage", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("gave up after %s, before the bound", time.Since(start))
	}
}

func TestIsUnavailableTellsAnswersFromOutages(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{redis.Nil, false},
		{ErrFenced, false},
		{context.Canceled, false},
		{errors.New("ERR wrong number of arguments"), false},
		{errors.New("LOADING Redis is loading the dataset in memory"), true},
		{errors.New("READONLY You can't write against a read only replica."), true},
		{syscall.ECONNREFUSED, true},
		{errors.New("dial unix /x/redis.sock: connect: no such file or directory"), true},
	} {
		if got := IsUnavailable(c.err); got != c.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// go-redis sets up a new connection with commands that run through the
// client's hooks (HELLO). A pub/sub connection re-dialled during an outage
// must not be held in a retry of its own set-up on a dead connection: it
// comes back with the server, and can be closed meanwhile.
func TestOutageHookLetsAPubSubReconnect(t *testing.T) {
	f := newFixture(t)
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: f.redis.Socket, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(&OutageHook{Bound: time.Minute})
	ps := c.Subscribe(f.ctx, "ch")
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(f.ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	f.redis.Kill9()
	f.redis.Restart()
	got := make(chan string, 1)
	go func() {
		for {
			msg, err := ps.ReceiveTimeout(f.ctx, 10*time.Second)
			if m, ok := msg.(*redis.Message); ok {
				got <- m.Payload
				return
			}
			if err != nil && f.ctx.Err() != nil {
				return
			}
		}
	}()
	deadline := time.After(30 * time.Second)
	for {
		f.must(f.rdb.Publish(f.ctx, "ch", "hello").Err())
		select {
		case p := <-got:
			if p != "hello" {
				t.Fatalf("got %q", p)
			}
			if err := ps.Unsubscribe(f.ctx, "ch"); err != nil {
				t.Fatalf("unsubscribe after the restart: %v", err)
			}
			return
		case <-time.After(100 * time.Millisecond): // resubscription in progress: publish again
		case <-deadline:
			t.Fatal("the pub/sub connection did not come back within 30s")
		}
	}
}

// A connection's set-up command is tried once: its connection is broken,
// and only a new one (the outer command's retry) can heal.
func TestOutageHookDoesNotRetryConnectionSetUp(t *testing.T) {
	h := &OutageHook{Bound: time.Minute}
	for _, c := range []struct {
		cmd  redis.Cmder
		want int
	}{
		{redis.NewCmd(context.Background(), "hello", 3), 1},
		{redis.NewStatusCmd(context.Background(), "auth", "x"), 1},
		{redis.NewStatusCmd(context.Background(), "set", "k", "v"), 3},
	} {
		calls := 0
		next := func(ctx context.Context, cmd redis.Cmder) error {
			calls++
			if calls < 3 {
				return syscall.EPIPE
			}
			return nil
		}
		_ = h.ProcessHook(next)(context.Background(), c.cmd)
		if calls != c.want {
			t.Errorf("%s: tried %d times, want %d", c.cmd.Name(), calls, c.want)
		}
	}
}

func TestOutageHookStopsWaitingWhenAbandoned(t *testing.T) {
	abandon := make(chan struct{})
	h := &OutageHook{Bound: time.Minute, Abandon: abandon}
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: "/nonexistent/redis.sock", MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(h)
	done := make(chan error, 1)
	go func() { done <- c.Set(context.Background(), "k", "v", 0).Err() }()
	select {
	case err := <-done:
		t.Fatalf("SET returned %v before the wait was abandoned", err)
	case <-time.After(300 * time.Millisecond): // it is retrying: nothing to wait for but time
	}
	close(abandon)
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrRedisOutage) || !IsUnavailable(err) {
			t.Fatalf("SET after Abandon: %v; want the connection error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SET still waiting 10s after Abandon")
	}
}
