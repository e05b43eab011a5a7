package townredis

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
)

// inProcessEmbedded runs the embedded server in this process for one test.
func inProcessEmbedded(t *testing.T) *redis.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "tte")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := StartEmbedded(filepath.Join(dir, "r.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(dir, "r.sock")})
	t.Cleanup(func() { c.Close() })
	return c
}

// eventRecorder collects keyspace and keyevent messages of database 0.
type eventRecorder struct {
	ps   *redis.PubSub
	seq  int
	keys []string // "KEY EVENT" from __keyspace@0__:KEY
	evs  []string // "KEY EVENT" from __keyevent@0__:EVENT
}

func recordEvents(ctx context.Context, t *testing.T, c *redis.Client) *eventRecorder {
	t.Helper()
	ps := c.PSubscribe(ctx, "__key*@0__:*")
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	return &eventRecorder{ps: ps}
}

// until runs cmds, then writes a marker key and returns the events seen
// before the marker's, from both kinds of channel. Events reach a
// subscriber in the order the server made them, so the marker's comes
// after those of cmds.
func (r *eventRecorder) until(ctx context.Context, t *testing.T, c *redis.Client, cmds func(context.Context, *redis.Client) error) (keyspace, keyevent []string) {
	t.Helper()
	if err := cmds(ctx, c); err != nil {
		t.Fatal(err)
	}
	r.seq++
	marker := fmt.Sprintf("marker:%d", r.seq)
	if err := c.Set(ctx, marker, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.keys, r.evs = nil, nil
	for {
		msg, err := r.ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for the marker's events (have %q and %q): %v", r.keys, r.evs, err)
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(m.Channel, "__keyspace@0__:"):
			key := strings.TrimPrefix(m.Channel, "__keyspace@0__:")
			if key != marker {
				r.keys = append(r.keys, key+" "+m.Payload)
			}
		case strings.HasPrefix(m.Channel, "__keyevent@0__:"):
			if m.Payload == marker {
				return r.keys, r.evs
			}
			r.evs = append(r.evs, m.Payload+" "+strings.TrimPrefix(m.Channel, "__keyevent@0__:"))
		}
	}
}

// keyspaceCases are tt's and tthost's writes, with the events Redis 7
// publishes for them (flags "g$lhKE"). Keys are fresh per case and no
// command fails or empties a key: there the embedded server differs on
// purpose (see keyspaceEvents).
var keyspaceCases = []struct {
	name string
	cmds func(ctx context.Context, c *redis.Client) error
	want []string
}{
	{"tt send appends to the inbox", func(ctx context.Context, c *redis.Client) error {
		return c.RPush(ctx, "inbox:1", `{"id":1}`).Err()
	}, []string{"inbox:1 rpush"}},
	{"an urgent send pushes the front", func(ctx context.Context, c *redis.Client) error {
		return c.LPush(ctx, "urgent:1", `{"id":2}`).Err()
	}, []string{"urgent:1 lpush"}},
	{"tt stop sets the stop flag with a TTL", func(ctx context.Context, c *redis.Client) error {
		return c.SetEx(ctx, "stop:1", "1", time.Hour).Err()
	}, []string{"stop:1 set", "stop:1 expire"}},
	{"tt rewrites an agent record", func(ctx context.Context, c *redis.Client) error {
		if err := c.HSet(ctx, "agent:1", "state", "idle", "current_task", "t1").Err(); err != nil {
			return err
		}
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, "agent:1", "current_task")
			p.HSet(ctx, "agent:1", "state", "paused")
			return nil
		})
		return err
	}, []string{"agent:1 hset", "agent:1 hdel", "agent:1 hset"}},
	{"counters and deletion of a hash", func(ctx context.Context, c *redis.Client) error {
		c.HSet(ctx, "agent:2", "rounds", "1")
		c.HIncrBy(ctx, "agent:2", "rounds", 1)
		return c.Del(ctx, "agent:2").Err()
	}, []string{"agent:2 hset", "agent:2 hincrby", "agent:2 del"}},
	{"a tthost send is one transaction with the wake token", func(ctx context.Context, c *redis.Client) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.RPush(ctx, "inbox:3", "m")
			p.LPush(ctx, "wake:3", "1")
			p.LTrim(ctx, "wake:3", 0, 0)
			p.Expire(ctx, "wake:3", time.Hour)
			return nil
		})
		return err
	}, []string{"inbox:3 rpush", "wake:3 lpush", "wake:3 ltrim", "wake:3 expire"}},
	{"a discarded transaction publishes nothing", func(ctx context.Context, c *redis.Client) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LPush(ctx, "never", "x")
			p.Discard()
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "EXEC without MULTI") {
			return err
		}
		return nil
	}, nil},
	{"a script's commands are published", func(ctx context.Context, c *redis.Client) error {
		c.RPush(ctx, "inbox:4", "a", "b")
		c.LPush(ctx, "wake:4", "1")
		return c.Eval(ctx, `redis.call('DEL', KEYS[1])
			local m = redis.call('LPOP', KEYS[2])
			redis.call('RPUSH', KEYS[3], 'n:' .. m)
			return m`, []string{"wake:4", "inbox:4", "inflight:4"}).Err()
	}, []string{"inbox:4 rpush", "wake:4 lpush", "wake:4 del", "inbox:4 lpop", "inflight:4 rpush"}},
	{"pops and moves", func(ctx context.Context, c *redis.Client) error {
		c.RPush(ctx, "q:5", "a", "b", "c", "d", "e")
		c.LPop(ctx, "q:5")
		c.RPop(ctx, "q:5")
		c.LMove(ctx, "q:5", "d:5", "LEFT", "RIGHT")
		return c.RPopLPush(ctx, "q:5", "d:5").Err()
	}, []string{"q:5 rpush", "q:5 lpop", "q:5 rpop", "d:5 rpush", "q:5 lpop", "d:5 lpush", "q:5 rpop"}},
	{"list edits", func(ctx context.Context, c *redis.Client) error {
		c.RPush(ctx, "q:6", "p", "z", "z")
		c.LInsertBefore(ctx, "q:6", "p", "x")
		c.LSet(ctx, "q:6", 0, "y")
		c.LRem(ctx, "q:6", 1, "z")
		return c.LTrim(ctx, "q:6", 0, 1).Err()
	}, []string{"q:6 rpush", "q:6 linsert", "q:6 lset", "q:6 lrem", "q:6 ltrim"}},
	{"strings and generic commands", func(ctx context.Context, c *redis.Client) error {
		c.Set(ctx, "s:7", "v", 10*time.Second)
		c.Set(ctx, "t:7", "v", 0)
		c.Incr(ctx, "n:7")
		c.Append(ctx, "t:7", "x")
		c.Expire(ctx, "t:7", time.Hour)
		c.Persist(ctx, "t:7")
		c.Rename(ctx, "t:7", "u:7")
		c.GetDel(ctx, "u:7")
		c.MSet(ctx, "a:7", "1", "b:7", "2")
		return c.Unlink(ctx, "a:7", "b:7").Err()
	}, []string{"s:7 set", "s:7 expire", "t:7 set", "n:7 incrby", "t:7 append", "t:7 expire", "t:7 persist",
		"t:7 rename_from", "u:7 rename_to", "u:7 del", "a:7 set", "b:7 set", "a:7 del", "b:7 del"}},
	{"classes that are off publish nothing", func(ctx context.Context, c *redis.Client) error {
		return c.SAdd(ctx, "set:8", "x").Err()
	}, nil},
}

// TestEmbeddedKeyspaceEventsAreRedisServers runs the same writes on
// redis-server and on the embedded server: both publish the same messages
// on the same channels.
func TestEmbeddedKeyspaceEventsAreRedisServers(t *testing.T) {
	servers := []struct {
		name   string
		client func(t *testing.T) *redis.Client
	}{
		{"redis-server", func(t *testing.T) *redis.Client { return testenv.StartRedis(t).Client }},
		{"embedded", inProcessEmbedded},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ctx := ctxFor(t)
			c := srv.client(t)
			if err := c.ConfigSet(ctx, "notify-keyspace-events", "Kg$lhE").Err(); err != nil {
				t.Fatal(err)
			}
			rec := recordEvents(ctx, t, c)
			for _, tc := range keyspaceCases {
				keyspace, keyevent := rec.until(ctx, t, c, tc.cmds)
				if !reflect.DeepEqual(keyspace, tc.want) {
					t.Errorf("%s: keyspace events %q, want %q", tc.name, keyspace, tc.want)
				}
				if !reflect.DeepEqual(keyevent, tc.want) {
					t.Errorf("%s: keyevent events %q, want %q", tc.name, keyevent, tc.want)
				}
			}
		})
	}
}

// TestEmbeddedConfigNotifyKeyspaceEventsIsRedisServers: CONFIG SET and GET
// of notify-keyspace-events accept, refuse and normalise what redis-server
// does.
func TestEmbeddedConfigNotifyKeyspaceEventsIsRedisServers(t *testing.T) {
	ctx := ctxFor(t)
	real, embedded := testenv.StartRedis(t).Client, inProcessEmbedded(t)
	got, err := embedded.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := canonicalFlags(notify.RequiredFlags); got["notify-keyspace-events"] != want || want != "g$lhK" {
		t.Fatalf("the embedded server starts with %q, want %q", got["notify-keyspace-events"], want)
	}
	for _, flags := range []string{"Kgl$h", "KEA", "AKn", "Kn", "Kgn", "mE", "", "K", "Kg$lshzxetd", "Kg$lshzxet", "Exl", "Kq", "KEA "} {
		setReal := real.ConfigSet(ctx, "notify-keyspace-events", flags).Err()
		setEmb := embedded.ConfigSet(ctx, "notify-keyspace-events", flags).Err()
		if fmt.Sprint(setReal) != fmt.Sprint(setEmb) {
			t.Errorf("CONFIG SET %q: embedded says %v, redis-server %v", flags, setEmb, setReal)
			continue
		}
		getReal := real.ConfigGet(ctx, "notify-keyspace-events").Val()["notify-keyspace-events"]
		getEmb := embedded.ConfigGet(ctx, "notify-*").Val()["notify-keyspace-events"]
		if getReal != getEmb {
			t.Errorf("after CONFIG SET %q: embedded reports %q, redis-server %q", flags, getEmb, getReal)
		}
	}
	if got := embedded.ConfigGet(ctx, "maxmemory").Val(); len(got) != 0 {
		t.Errorf("CONFIG GET maxmemory = %v, want nothing", got)
	}
	if err := embedded.ConfigSet(ctx, "maxmemory", "1").Err(); err == nil || !strings.Contains(err.Error(), "Unknown option") {
		t.Errorf("CONFIG SET maxmemory: %v, want Redis's unknown-option error", err)
	}
	if err := embedded.ConfigRewrite(ctx).Err(); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("CONFIG REWRITE: %v, want not supported", err)
	}

	// With notifications off, nothing is published.
	if err := embedded.ConfigSet(ctx, "notify-keyspace-events", "").Err(); err != nil {
		t.Fatal(err)
	}
	ps := embedded.PSubscribe(ctx, "__key*@0__:*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	embedded.LPush(ctx, "quiet", "x")
	// The marker's event comes after any event of the LPUSH.
	if err := embedded.ConfigSet(ctx, "notify-keyspace-events", "Kl").Err(); err != nil {
		t.Fatal(err)
	}
	embedded.LPush(ctx, "marker", "x")
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Channel != "__keyspace@0__:marker" {
		t.Errorf("with notify-keyspace-events off, got %s", msg)
	}
}

// TestEmbeddedKeyspaceEventsUnderConcurrentWriters: every write of many
// clients at once is published once (and the race detector watches the
// hook).
func TestEmbeddedKeyspaceEventsUnderConcurrentWriters(t *testing.T) {
	ctx := ctxFor(t)
	c := inProcessEmbedded(t)
	ps := c.PSubscribe(ctx, "__keyspace@0__:w:*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("w:%d", i)
			for range each {
				if i%2 == 0 {
					c.LPush(ctx, key, "x")
				} else {
					c.Eval(ctx, `return redis.call('RPUSH', KEYS[1], 'x')`, []string{key})
				}
			}
		}()
	}
	wg.Wait()
	for n := 0; n < writers*each; n++ {
		if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
			t.Fatalf("after %d of %d events: %v", n, writers*each, err)
		}
	}
}
