package cli

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/townredis"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The embedded server is tthost itself running `redis serve-embedded`
// with the arguments townredis.Ensure appends: this runs the real binary.
func TestEmbeddedRedisRunsAsTthostRedisServeEmbedded(t *testing.T) {
	tt := newBareTown(t)
	tt.exe = sdktest.Build(t, "github.com/tthost/tthost/cmd/tthost", "tthost")
	cfg := config.New(testTownName)
	cfg.TTHost.RedisServer = config.RedisServerEmbedded
	tt.writeConfig(cfg)
	t.Cleanup(func() {
		if err := townredis.Stop(context.Background(), tt.dir); err != nil {
			t.Errorf("stop the embedded Redis: %v", err)
		}
	})

	r := tt.run("status")
	out := r.ok(t)
	mustContain(t, out, "embedded in-memory server", "its data is lost when it stops", "No agents")
	st, err := townredis.Status(tt.dir)
	if err != nil || !st.Running || st.Kind != townredis.KindEmbedded {
		t.Fatalf("status: %+v, %v; want the embedded server running", st, err)
	}

	// The server works: commands store and read data through it.
	tt.run("backlog", "add", "kept in memory").ok(t)
	mustContain(t, tt.run("backlog", "list").ok(t), "kept in memory")

	// SIGHUP does not stop it (nor lose its data), as with redis-server.
	if err := syscall.Kill(st.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a server that did not ignore it is gone by now
	if st, err := townredis.Status(tt.dir); err != nil || !st.Running {
		t.Fatalf("after SIGHUP: %+v, %v; want the embedded server still running", st, err)
	}
	mustContain(t, tt.run("backlog", "list").ok(t), "kept in memory")

	mustContain(t, tt.run("redis", "status").ok(t), "embedded in-memory server", "warning:")
	mustContain(t, tt.run("redis", "stop").ok(t), "Stopped the town's embedded Redis", "in-memory data is gone")
	if st, _ := townredis.Status(tt.dir); st.Running {
		t.Errorf("the embedded server still runs: %+v", st)
	}
}

func TestRedisServeEmbeddedNeedsEnsuresArguments(t *testing.T) {
	tt := newBareTown(t)
	r := tt.run("redis", "serve-embedded")
	r.fails(t, townredis.EmbeddedFlag)
	if r.code != 2 {
		t.Errorf("exit code %d, want 2", r.code)
	}
}

func TestRedisCommandsLeaveAnExternalRedisAlone(t *testing.T) {
	tt := newTestTown(t)
	mustContain(t, tt.run("redis", "status").ok(t), tt.redis.URL, "REDIS_URL", "external server: it answers")
	mustContain(t, tt.run("redis", "stop").ok(t), "did not start: nothing to stop")
	if err := tt.redis.Client.Ping(tt.ctx()).Err(); err != nil {
		t.Errorf("the external Redis stopped answering: %v", err)
	}
}

func TestInitWithoutRedisServerStartsTheEmbeddedServer(t *testing.T) {
	tt := newBareTown(t)
	tt.exe = sdktest.Build(t, "github.com/tthost/tthost/cmd/tthost", "tthost")
	// No redis-server on PATH (nor in ~/.tt/bin of this HOME).
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Cleanup(func() {
		if err := townredis.Stop(context.Background(), tt.dir); err != nil {
			t.Errorf("stop the embedded Redis: %v", err)
		}
	})
	r := tt.run("init", "--name", "mem")
	mustContain(t, r.ok(t), "embedded in-memory server", "started now", "redis-server is not installed")
	mustContain(t, r.errOut, "warning: "+townredis.EmbeddedNotice)
	if st, err := townredis.Status(tt.dir); err != nil || st.Kind != townredis.KindEmbedded {
		t.Errorf("status %+v, %v; want the embedded server", st, err)
	}
}
