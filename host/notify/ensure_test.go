package notify_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/notify"
)

func TestMissingFlags(t *testing.T) {
	for _, tc := range []struct{ current, want string }{
		{"", "Kg$lh"},
		{"g$lhK", ""},
		{"AK", ""},
		{"AKE", ""},
		{"A", "K"},
		{"KE", "g$lh"},
		{"xE", "Kg$lh"},
		{"Kl", "g$h"},
	} {
		if got := notify.MissingFlags(tc.current); got != tc.want {
			t.Errorf("MissingFlags(%q) = %q, want %q", tc.current, got, tc.want)
		}
	}
}

// TestEnsure runs the detection against real servers set up as the
// places tthost meets: its own, a default Redis, one whose flags others
// set, managed services that refuse CONFIG, an ACL without pub/sub.
func TestEnsure(t *testing.T) {
	withUser := func(acl ...string) func(r *testenv.Redis) *redis.Client {
		return func(r *testenv.Redis) *redis.Client {
			c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.Socket, Username: "worker", Password: "pw"})
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	cases := []struct {
		name   string
		args   []string
		client func(r *testenv.Redis) *redis.Client // nil: the default user
		policy notify.Policy
		check  func(t *testing.T, st notify.Status, after string)
	}{
		{"tthost's own redis-server has them on", []string{"--notify-keyspace-events", "Kgl$h"}, nil, "",
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModeKeyspace, "g$lhK", false)
			}},
		{"a default redis-server gets them turned on", nil, nil, notify.PolicyAuto,
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModeKeyspace, "g$lhK", true)
				if st.Previous != "" || after != "g$lhK" {
					t.Errorf("previous %q, server now %q; want \"\" and g$lhK", st.Previous, after)
				}
			}},
		{"flags that others set are kept", []string{"--notify-keyspace-events", "Ex"}, nil, "",
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModeKeyspace, "g$lhxKE", true)
				if st.Previous != "xE" {
					t.Errorf("previous %q, want xE", st.Previous)
				}
			}},
		{"A counts for every class", []string{"--notify-keyspace-events", "KA"}, nil, "",
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModeKeyspace, "AK", false)
			}},
		{"policy off changes nothing and polls", nil, nil, notify.PolicyOff,
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModePoll, "", false)
				mustContain(t, st.Reason, `[tthost] notifications = "off"`)
				if after != "" {
					t.Errorf("the server's flags became %q under policy off", after)
				}
			}},
		{"a managed Redis without CONFIG and without events polls", []string{"--rename-command", "CONFIG", ""}, nil, "",
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModePoll, "", false)
				mustContain(t, st.Reason, "CONFIG is not permitted", "unknown command", "none of class l, h, $, g")
				if st.FlagsKnown {
					t.Error("FlagsKnown without CONFIG")
				}
			}},
		{"a managed Redis without CONFIG that delivers events is proven by the probe",
			[]string{"--notify-keyspace-events", "KA", "--rename-command", "CONFIG", ""}, nil, "",
			func(t *testing.T, st notify.Status, after string) {
				if st.Mode != notify.ModeKeyspace || st.FlagsKnown || !st.Verified {
					t.Errorf("status %+v, want keyspace verified by the probe, flags unknown", st)
				}
				mustContain(t, st.String(), "CONFIG is not permitted", "probe")
			}},
		{"an ACL that allows CONFIG GET but not CONFIG SET polls",
			[]string{"--user", "worker", "on", ">pw", "~*", "&*", "+@all", "-config|set"}, withUser(), "",
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModePoll, "", false)
				mustContain(t, st.Reason, `notify-keyspace-events is ""`, "CONFIG SET is not permitted", "NOPERM")
			}},
		{"an ACL without pub/sub channels polls",
			[]string{"--notify-keyspace-events", "KA", "--user", "worker", "on", ">pw", "~*", "resetchannels", "+@all"}, withUser(), "",
			func(t *testing.T, st notify.Status, after string) {
				expect(t, st, notify.ModePoll, "AK", false)
				mustContain(t, st.Reason, "probe was refused", "NOPERM")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t)
			r := testenv.StartRedisWith(t, testenv.RedisOptions{Args: tc.args})
			c := r.Client
			if tc.client != nil {
				c = tc.client(r)
			}
			st, err := notify.Ensure(ctx, c, keys, notify.EnsureOptions{Policy: tc.policy})
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			var after string
			if m, err := r.Client.ConfigGet(ctx, "notify-keyspace-events").Result(); err == nil {
				after = m["notify-keyspace-events"]
			}
			t.Logf("status: %s", st)
			tc.check(t, st, after)
			// The probe cleans up after itself.
			if n, err := r.Client.Keys(ctx, "*").Result(); err == nil && len(n) != 0 {
				t.Errorf("keys left behind: %q", n)
			}
		})
	}
}

func TestEnsureOnTheEmbeddedServer(t *testing.T) {
	ctx := ctxFor(t)
	c := startEmbedded(t)
	st, err := notify.Ensure(ctx, c, keys, notify.EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, st, notify.ModeKeyspace, "g$lhK", false)

	// Turned off by someone, on again with CONFIG SET.
	if err := c.ConfigSet(ctx, "notify-keyspace-events", "").Err(); err != nil {
		t.Fatal(err)
	}
	st, err = notify.Ensure(ctx, c, keys, notify.EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, st, notify.ModeKeyspace, "g$lhK", true)
}

func TestEnsureRejectsAnUnknownPolicy(t *testing.T) {
	_, err := notify.Ensure(ctxFor(t), startEmbedded(t), keys, notify.EnsureOptions{Policy: "on"})
	if err == nil || !strings.Contains(err.Error(), `"auto" or "off"`) {
		t.Fatalf("Ensure with policy on: %v, want an error naming auto and off", err)
	}
}

func TestEnsureFailsWhenTheServerIsGone(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Kill9()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.Socket, MaxRetries: -1})
	defer c.Close()
	if _, err := notify.Ensure(ctxFor(t), c, keys, notify.EnsureOptions{}); err == nil {
		t.Fatal("Ensure against a dead server: no error")
	}
}

func expect(t *testing.T, st notify.Status, mode notify.Mode, flags string, enabled bool) {
	t.Helper()
	if st.Mode != mode || st.Flags != flags || st.Enabled != enabled {
		t.Errorf("status %+v (%s), want mode %s, flags %q, enabled %v", st, st, mode, flags, enabled)
	}
	if (st.Mode == notify.ModeKeyspace) != st.Verified {
		t.Errorf("status %+v: keyspace mode must be verified, and only it", st)
	}
	if (st.Mode == notify.ModePoll) != (st.Reason != "") {
		t.Errorf("status %+v: a reason is given exactly in poll mode", st)
	}
}

func mustContain(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%q does not contain %q", s, p)
		}
	}
}
