package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
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
	if !testenv.WaitFileContains(t, filepath.Join(tt.dir, ".tt", "logs", "redis-embedded.log"), "received SIGHUP: ignored", 15*time.Second) {
		t.Fatal("the embedded server did not log the SIGHUP")
	}
	if st, err := townredis.Status(tt.dir); err != nil || !st.Running {
		t.Fatalf("after SIGHUP: %+v, %v; want the embedded server still running", st, err)
	}
	mustContain(t, tt.run("backlog", "list").ok(t), "kept in memory")

	mustContain(t, tt.run("redis", "status").ok(t), "embedded in-memory server", "warning:",
		`notifications: keyspace (flags "g$lhK")`)
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

// TestRedisStatusSaysHowWorkersAreNotified: `redis status` runs the
// detection a worker runs, turns the notifications on under policy auto,
// leaves the server alone under off, and says when CONFIG is refused.
func TestRedisStatusSaysHowWorkersAreNotified(t *testing.T) {
	t.Run("a default Redis gets them turned on", func(t *testing.T) {
		tt := newTestTown(t)
		mustContain(t, tt.run("redis", "status").ok(t),
			`notifications: keyspace (flags "g$lhK", enabled by tthost now; was "")`)
		// Once on, they stay on: the next look finds them.
		var st RedisStatus
		if err := json.Unmarshal([]byte(tt.run("redis", "status", "--json").ok(t)), &st); err != nil {
			t.Fatal(err)
		}
		n := st.Notifications
		if n == nil || n.Mode != notify.ModeKeyspace || n.Enabled || n.Flags != "g$lhK" || !n.Verified || n.Policy != notify.PolicyAuto {
			t.Fatalf("--json notifications = %+v, want keyspace, g$lhK, verified, not enabled again", n)
		}
	})
	t.Run("policy off changes nothing", func(t *testing.T) {
		tt := newTestTown(t)
		cfg := config.New(testTownName)
		cfg.TTHost.Notifications = config.NotificationsOff
		tt.writeConfig(cfg)
		mustContain(t, tt.run("redis", "status").ok(t),
			`notifications: polling ([tthost] notifications = "off"); writers that send no wake signal (tt send, tt stop, tt interrupt) are seen within 250 ms during a turn ([tthost] turn_poll_ms) and at the next safety poll, every 5 s, while idle`)
		if got := tt.redis.Client.ConfigGet(tt.ctx(), "notify-keyspace-events").Val()["notify-keyspace-events"]; got != "" {
			t.Errorf("notify-keyspace-events became %q under policy off", got)
		}
	})
	t.Run("a managed Redis without CONFIG polls", func(t *testing.T) {
		tt := newBareTown(t)
		tt.redis = testenv.StartRedisWith(t, testenv.RedisOptions{Args: []string{"--rename-command", "CONFIG", ""}, Env: []string{tt.procs.Env()}})
		tt.env["REDIS_URL"] = tt.redis.URL
		tt.writeConfig(config.New(testTownName))
		out := tt.run("redis", "status").ok(t)
		mustContain(t, out, "external server: it answers", "notifications: polling (CONFIG is not permitted", "every 5 s")
		var st RedisStatus
		if err := json.Unmarshal([]byte(tt.run("redis", "status", "--json").ok(t)), &st); err != nil {
			t.Fatal(err)
		}
		if n := st.Notifications; n == nil || n.Mode != notify.ModePoll || n.FlagsKnown || n.Reason == "" {
			t.Fatalf("--json notifications = %+v, want poll with a reason, flags unknown", n)
		}
	})
}
