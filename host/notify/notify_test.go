package notify_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/townredis"
)

// eventWait bounds every wait for a watch to fire: generous for a loaded
// machine; a working watch fires in milliseconds.
const eventWait = 10 * time.Second

var keys = town.NewKeys("nt")

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// server is a Redis for a test: the real redis-server or the embedded one.
type server struct {
	name  string
	start func(t *testing.T) *redis.Client
}

var servers = []server{
	{"redis-server", func(t *testing.T) *redis.Client {
		return client(t, testenv.StartRedis(t).URL)
	}},
	{"embedded", startEmbedded},
}

func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// startEmbedded runs tthost's embedded server in this process.
func startEmbedded(t *testing.T) *redis.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "ttn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "r.sock")
	s, err := townredis.StartEmbedded(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return client(t, "unix://"+sock)
}

func newNotifier(t *testing.T, c redis.UniversalClient, opts notify.Options) *notify.Notifier {
	t.Helper()
	n, err := notify.New(ctxFor(t), c, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func watch(t *testing.T, n *notify.Notifier, agent string) *notify.Watch {
	t.Helper()
	w, err := n.Watch(ctxFor(t), agent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func waitFire(t *testing.T, w *notify.Watch, what string) {
	t.Helper()
	select {
	case <-w.C():
	case <-time.After(eventWait):
		t.Fatalf("the watch did not fire within %v after %s", eventWait, what)
	}
}

// expectQuiet proves that w did not fire for what happened before it
// returns: it writes to a marker agent's inbox and waits for the marker's
// watch. Events reach the Notifier on one connection in the order the
// server made them, so an event of w would have been handed out first.
func expectQuiet(ctx context.Context, t *testing.T, c redis.UniversalClient, w, marker *notify.Watch, markerAgent, what string) {
	t.Helper()
	settle(ctx, t, c, marker, markerAgent)
	select {
	case <-w.C():
		t.Fatalf("the watch fired for %s", what)
	default:
	}
}

// settle returns once every event of the writes made before it has been
// handed out: the marker agent's event comes after them.
func settle(ctx context.Context, t *testing.T, c redis.UniversalClient, marker *notify.Watch, markerAgent string) {
	t.Helper()
	if err := c.RPush(ctx, keys.Inbox(markerAgent), "marker").Err(); err != nil {
		t.Fatal(err)
	}
	waitFire(t, marker, "the marker's write")
}

// ttWrites are the writes of Tinytown's commands (no wake signal) and of
// tthost's, each of which must wake the agent's worker.
var ttWrites = []struct {
	name  string
	write func(ctx context.Context, c redis.UniversalClient, agent string) error
}{
	{"tt send (RPUSH inbox)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return c.RPush(ctx, keys.Inbox(agent), `{"id":"m"}`).Err()
	}},
	{"a high-priority tt send (LPUSH inbox)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return c.LPush(ctx, keys.Inbox(agent), `{"id":"m"}`).Err()
	}},
	{"tt send --urgent (LPUSH urgent)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return c.LPush(ctx, keys.Urgent(agent), `{"id":"u"}`).Err()
	}},
	{"tt stop (SETEX stop)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return c.SetEx(ctx, keys.Stop(agent), "1", time.Hour).Err()
	}},
	{"tt interrupt (HSET agent state=paused)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return c.HSet(ctx, keys.Agent(agent), "state", "paused").Err()
	}},
	{"tt's record rewrite (HDEL agent)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		c.HSet(ctx, keys.Agent(agent), "current_task", "t")
		return c.HDel(ctx, keys.Agent(agent), "current_task").Err()
	}},
	{"the agent deleted (DEL agent)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		c.HSet(ctx, keys.Agent(agent), "state", "idle")
		return c.Del(ctx, keys.Agent(agent)).Err()
	}},
	{"a message moved into the inbox (LMOVE)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		c.RPush(ctx, "elsewhere", "m")
		return c.LMove(ctx, "elsewhere", keys.Inbox(agent), "LEFT", "RIGHT").Err()
	}},
	{"tthost send (a transaction with the wake token)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return town.New(c, "nt").Send(ctx, town.NewTask(town.SupervisorID, agent, "do it"))
	}},
	{"tthost wake (LPUSH wake)", func(ctx context.Context, c redis.UniversalClient, agent string) error {
		return town.New(c, "nt").Wake(ctx, agent)
	}},
}

// TestWatchFiresForEveryWriteOfTt: each of tt's writes fires the agent's
// watch, on redis-server and on the embedded server.
func TestWatchFiresForEveryWriteOfTt(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			c := srv.start(t)
			n := newNotifier(t, c, notify.Options{})
			if n.Mode() != notify.ModeKeyspace {
				t.Fatalf("mode %s, want keyspace", n.Status())
			}
			for _, tc := range ttWrites {
				t.Run(tc.name, func(t *testing.T) {
					agent := town.NewID()
					w := watch(t, n, agent)
					if err := tc.write(ctxFor(t), c, agent); err != nil {
						t.Fatal(err)
					}
					waitFire(t, w, tc.name)
				})
			}
		})
	}
}

// TestWatchIgnoresTheWorkersOwnConsumption: taking messages, the wake
// token or the stop flag, and bumping counters, wake nobody.
func TestWatchIgnoresTheWorkersOwnConsumption(t *testing.T) {
	consumption := []struct {
		name    string
		prepare func(ctx context.Context, c redis.UniversalClient, agent string)
		consume func(ctx context.Context, c redis.UniversalClient, agent string) error
	}{
		{"LPOP of the inbox", func(ctx context.Context, c redis.UniversalClient, agent string) {
			c.RPush(ctx, keys.Inbox(agent), "a", "b")
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			return c.LPop(ctx, keys.Inbox(agent)).Err()
		}},
		{"RPOP of the inbox, emptying it", func(ctx context.Context, c redis.UniversalClient, agent string) {
			c.RPush(ctx, keys.Inbox(agent), "a")
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			return c.RPop(ctx, keys.Inbox(agent)).Err()
		}},
		{"RPOP of the urgent list", func(ctx context.Context, c redis.UniversalClient, agent string) {
			c.LPush(ctx, keys.Urgent(agent), "u", "v")
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			return c.RPop(ctx, keys.Urgent(agent)).Err()
		}},
		{"DEL of the wake key", func(ctx context.Context, c redis.UniversalClient, agent string) {
			town.New(c, "nt").Wake(ctx, agent)
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			return c.Del(ctx, keys.Wake(agent)).Err()
		}},
		{"DEL of the stop flag", func(ctx context.Context, c redis.UniversalClient, agent string) {
			c.SetEx(ctx, keys.Stop(agent), "1", time.Hour)
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			return c.Del(ctx, keys.Stop(agent)).Err()
		}},
		{"HINCRBY of the agent's counters", func(ctx context.Context, c redis.UniversalClient, agent string) {
			c.HSet(ctx, keys.Agent(agent), "rounds_completed", "1")
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			return c.HIncrBy(ctx, keys.Agent(agent), "rounds_completed", 1).Err()
		}},
		{"Intake taking every message and the wake token", func(ctx context.Context, c redis.UniversalClient, agent string) {
			s := town.New(c, "nt")
			c.HSet(ctx, keys.Agent(agent), "state", "idle")
			s.Send(ctx, town.NewTask(town.SupervisorID, agent, "one"))
			s.SendUrgent(ctx, town.NewTask(town.SupervisorID, agent, "two"))
		}, func(ctx context.Context, c redis.UniversalClient, agent string) error {
			res, err := town.New(c, "nt").Intake(ctx, agent, town.IntakeOptions{Full: true})
			if err == nil && len(res.Moved) != 2 {
				t.Errorf("Intake moved %d messages, want 2", len(res.Moved))
			}
			return err
		}},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ctx := ctxFor(t)
			c := srv.start(t)
			n := newNotifier(t, c, notify.Options{})
			markerAgent := town.NewID()
			marker := watch(t, n, markerAgent)
			for _, tc := range consumption {
				t.Run(tc.name, func(t *testing.T) {
					agent := town.NewID()
					tc.prepare(ctx, c, agent)
					// The embedded server publishes just after the reply:
					// the preparation's events must not reach the watch.
					settle(ctx, t, c, marker, markerAgent)
					w := watch(t, n, agent)
					if err := tc.consume(ctx, c, agent); err != nil {
						t.Fatal(err)
					}
					expectQuiet(ctx, t, c, w, marker, markerAgent, tc.name)
				})
			}
		})
	}
}

func TestWatchesOfOneAgentEachFireAndCloseIndependently(t *testing.T) {
	ctx := ctxFor(t)
	c := startEmbedded(t)
	n := newNotifier(t, c, notify.Options{})
	agent, markerAgent := town.NewID(), town.NewID()
	marker := watch(t, n, markerAgent)
	a, b := watch(t, n, agent), watch(t, n, agent)

	c.RPush(ctx, keys.Inbox(agent), "1")
	waitFire(t, a, "a write, for the first watch")
	waitFire(t, b, "a write, for the second watch")

	a.Close()
	a.Close() // twice is harmless
	c.RPush(ctx, keys.Inbox(agent), "2")
	waitFire(t, b, "a write after the other watch closed")
	expectQuiet(ctx, t, c, a, marker, markerAgent, "a write after Close")
}

// TestWatchUsesTheClientsDatabase: the channels name the database of the
// client (here from a unix:// URL with ?db=3).
func TestWatchUsesTheClientsDatabase(t *testing.T) {
	r := testenv.StartRedis(t)
	c := client(t, r.URL+"?db=3")
	if got := c.Options().DB; got != 3 {
		t.Fatalf("client database %d, want 3", got)
	}
	n := newNotifier(t, c, notify.Options{})
	if n.Mode() != notify.ModeKeyspace {
		t.Fatalf("mode %s on database 3", n.Status())
	}
	agent := town.NewID()
	w := watch(t, n, agent)
	if err := c.RPush(ctxFor(t), keys.Inbox(agent), "m").Err(); err != nil {
		t.Fatal(err)
	}
	waitFire(t, w, "RPUSH on database 3")
}
