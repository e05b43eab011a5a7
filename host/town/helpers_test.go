package town

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/internal/testenv"
)

// testTown is the town name every test uses; each test has its own server.
const testTown = "demo"

// fixedNow is the timestamp of the ref's golden examples.
var fixedNow = time.Date(2026, 4, 23, 22, 32, 34, 123456789, time.UTC)

type fixture struct {
	t     *testing.T
	ctx   context.Context
	redis *testenv.Redis
	rdb   *redis.Client
	store *Store
}

// newFixture starts a private redis-server and a Store on it.
func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, redis: r, rdb: r.Client, store: New(r.Client, testTown, opts...)}
}

// client opens another connection to the same server ("another process").
func (f *fixture) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: f.redis.Socket})
	f.t.Cleanup(func() { _ = c.Close() })
	return c
}

// orderedHash returns HGETALL as field/value pairs in server order (RESP2:
// RESP3 returns a map and loses the order).
func (f *fixture) orderedHash(key string) [][2]string {
	f.t.Helper()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: f.redis.Socket, Protocol: 2})
	defer c.Close()
	flat, err := c.Do(f.ctx, "HGETALL", key).StringSlice()
	if err != nil {
		f.t.Fatalf("HGETALL %s: %v", key, err)
	}
	out := make([][2]string, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		out = append(out, [2]string{flat[i], flat[i+1]})
	}
	return out
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// agent creates an agent named name with default fields.
func (f *fixture) agent(name string) *Agent {
	f.t.Helper()
	a, err := f.store.CreateAgent(f.ctx, AgentSpec{Name: name, CLI: "codex"})
	f.must(err)
	return a
}

func ptr[T any](v T) *T { return &v }
