package townredis

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/sdk/sdktest"
)

// TestServersRunWhatTthostNeeds runs the commands the town store relies on
// against the real redis-server and the embedded server, so a gap in the
// embedded one shows up here and not in a running town.
func TestServersRunWhatTthostNeeds(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	servers := []struct {
		name   string
		client func(t *testing.T) *redis.Client
	}{
		{"redis-server", func(t *testing.T) *redis.Client {
			r := testenv.StartRedis(t, procs.Env())
			c, err := Connect(ctxFor(t), r.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}},
		{"embedded", func(t *testing.T) *redis.Client {
			town, ep := newTown(t)
			if _, err := Ensure(ctxFor(t), ep, town, embeddedOpts(t, procs)); err != nil {
				t.Fatal(err)
			}
			return connect(t, ep)
		}},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			c := srv.client(t)
			ctx := ctxFor(t)
			for _, tc := range commandChecks {
				t.Run(tc.name, func(t *testing.T) {
					if err := c.FlushDB(ctx).Err(); err != nil {
						t.Fatal(err)
					}
					tc.run(ctx, t, c)
				})
			}
		})
	}
}

var commandChecks = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, c *redis.Client)
}{
	{"EVAL moves a message into the in-flight list atomically", func(ctx context.Context, t *testing.T, c *redis.Client) {
		must(t, c.RPush(ctx, "inbox", "m1", "m2").Err())
		got, err := c.Eval(ctx, `
			local m = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
			if not m then return false end
			redis.call('HINCRBY', KEYS[3], 'delivered', 1)
			return m`, []string{"inbox", "inflight", "stats"}).Text()
		must(t, err)
		if got != "m1" {
			t.Fatalf("EVAL returned %q, want m1", got)
		}
		expectList(ctx, t, c, "inflight", "m1")
		expectList(ctx, t, c, "inbox", "m2")
		if n, _ := c.HGet(ctx, "stats", "delivered").Int(); n != 1 {
			t.Fatalf("delivered = %d, want 1", n)
		}
	}},
	{"EVALSHA runs a loaded script", func(ctx context.Context, t *testing.T, c *redis.Client) {
		sha, err := c.ScriptLoad(ctx, `return redis.call('INCRBY', KEYS[1], ARGV[1])`).Result()
		must(t, err)
		n, err := c.EvalSha(ctx, sha, []string{"counter"}, 5).Int()
		must(t, err)
		if n != 5 {
			t.Fatalf("EVALSHA = %d, want 5", n)
		}
		if err := c.EvalSha(ctx, "0000000000000000000000000000000000000000", nil).Err(); err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			t.Fatalf("unknown sha: %v, want NOSCRIPT (go-redis falls back to EVAL on it)", err)
		}
	}},
	{"LMOVE", func(ctx context.Context, t *testing.T, c *redis.Client) {
		must(t, c.RPush(ctx, "a", "x", "y").Err())
		v, err := c.LMove(ctx, "a", "b", "LEFT", "RIGHT").Result()
		must(t, err)
		if v != "x" {
			t.Fatalf("LMOVE = %q", v)
		}
		if err := c.LMove(ctx, "empty", "b", "LEFT", "RIGHT").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("LMOVE on an empty list: %v, want nil", err)
		}
	}},
	{"BLPOP wakes on a push and times out on nothing", func(ctx context.Context, t *testing.T, c *redis.Client) {
		got := make(chan []string, 1)
		go func() {
			v, _ := c.BLPop(ctx, 5*time.Second, "urgent").Result()
			got <- v
		}()
		must(t, c.RPush(ctx, "urgent", "now").Err())
		select {
		case v := <-got:
			if len(v) != 2 || v[0] != "urgent" || v[1] != "now" {
				t.Fatalf("BLPOP = %q", v)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("BLPOP did not return after a push")
		}
		// One second is the shortest timeout go-redis sends.
		start := time.Now()
		if err := c.BLPop(ctx, time.Second, "nothing").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("BLPOP on nothing: %v, want nil", err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("BLPOP with a 1s timeout took %v", d)
		}
	}},
	{"BLMOVE", func(ctx context.Context, t *testing.T, c *redis.Client) {
		must(t, c.RPush(ctx, "inbox", "m").Err())
		v, err := c.BLMove(ctx, "inbox", "inflight", "LEFT", "RIGHT", time.Second).Result()
		must(t, err)
		if v != "m" {
			t.Fatalf("BLMOVE = %q", v)
		}
	}},
	{"XADD MAXLEN ~ trims and XRANGE reads", func(ctx context.Context, t *testing.T, c *redis.Client) {
		for i := range 150 {
			must(t, c.XAdd(ctx, &redis.XAddArgs{
				Stream: "events", MaxLen: 10, Approx: true,
				Values: map[string]any{"data": strconv.Itoa(i)},
			}).Err())
		}
		n, err := c.XLen(ctx, "events").Result()
		must(t, err)
		if n < 10 || n > 150 {
			t.Fatalf("XLEN after MAXLEN ~ 10 = %d", n)
		}
		last, err := c.XRevRangeN(ctx, "events", "+", "-", 1).Result()
		must(t, err)
		if len(last) != 1 || last[0].Values["data"] != "149" {
			t.Fatalf("last entry = %+v", last)
		}
		must(t, c.XAdd(ctx, &redis.XAddArgs{Stream: "events", MaxLen: 5, Values: []any{"data", "x"}}).Err())
		if n, _ := c.XLen(ctx, "events").Result(); n != 5 {
			t.Fatalf("XLEN after MAXLEN 5 = %d", n)
		}
	}},
	{"HINCRBY and hashes", func(ctx context.Context, t *testing.T, c *redis.Client) {
		must(t, c.HSet(ctx, "agent", "state", "idle", "rounds_completed", "2").Err())
		n, err := c.HIncrBy(ctx, "agent", "rounds_completed", 3).Result()
		must(t, err)
		if n != 5 {
			t.Fatalf("HINCRBY = %d, want 5", n)
		}
		all, err := c.HGetAll(ctx, "agent").Result()
		must(t, err)
		if all["state"] != "idle" || all["rounds_completed"] != "5" {
			t.Fatalf("HGETALL = %v", all)
		}
	}},
	{"SETEX sets a TTL that runs down with the clock", func(ctx context.Context, t *testing.T, c *redis.Client) {
		must(t, c.SetEx(ctx, "heartbeat", "1", 30*time.Second).Err())
		ttl, err := c.TTL(ctx, "heartbeat").Result()
		must(t, err)
		if ttl <= 0 || ttl > 30*time.Second {
			t.Fatalf("TTL = %v", ttl)
		}
		must(t, c.Set(ctx, "short", "1", 50*time.Millisecond).Err())
		// Expiry has no event to wait for; poll with a deadline.
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := c.Exists(ctx, "short").Result()
			must(t, err)
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a key with a 50ms TTL still exists after 5s: TTLs do not follow the clock")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}},
	{"MULTI/EXEC", func(ctx context.Context, t *testing.T, c *redis.Client) {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, "task", "state", "assigned")
			p.RPush(ctx, "backlog", "t1")
			return nil
		})
		must(t, err)
		expectList(ctx, t, c, "backlog", "t1")
	}},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func expectList(ctx context.Context, t *testing.T, c *redis.Client, key string, want ...string) {
	t.Helper()
	got, err := c.LRange(ctx, key, 0, -1).Result()
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("%s = %q, want %q", key, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %q, want %q", key, got, want)
		}
	}
}
