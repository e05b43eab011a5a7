package townredis

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/internal/testenv"
)

func TestParseSentinelURL(t *testing.T) {
	good := []struct {
		url  string
		want redis.FailoverOptions
		tls  bool
	}{
		{
			url:  "redis://s1:26379?master_name=mymaster",
			want: redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379"}},
		},
		{
			url: "redis://s1:26379/2?master_name=mymaster&addr=s2:26379&addr=10.0.0.3:26380",
			want: redis.FailoverOptions{MasterName: "mymaster", DB: 2,
				SentinelAddrs: []string{"s1:26379", "s2:26379", "10.0.0.3:26380"}},
		},
		{
			// The user info is the sentinels' login; username= and
			// password= are the master's.
			url: "redis://sentuser:sentsecret@s1:26379?master_name=m&username=app&password=mastersecret",
			want: redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"s1:26379"},
				SentinelUsername: "sentuser", SentinelPassword: "sentsecret", Username: "app", Password: "mastersecret"},
		},
		{
			url: "redis://:sentsecret@[::1]:26379?master_name=m&db=3",
			want: redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"[::1]:26379"},
				SentinelPassword: "sentsecret", DB: 3},
		},
		{
			url:  "rediss://s1:26379?master_name=m",
			want: redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"s1:26379"}},
			tls:  true,
		},
		{
			url: "redis://s1:26379?master_name=m&dial_timeout=3&read_timeout=6s",
			want: redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"s1:26379"},
				DialTimeout: 3 * time.Second, ReadTimeout: 6 * time.Second},
		},
	}
	for _, c := range good {
		if !IsSentinelURL(c.url) {
			t.Errorf("IsSentinelURL(%q) = false", c.url)
		}
		got, err := ParseSentinelURL(c.url)
		if err != nil {
			t.Errorf("ParseSentinelURL(%q): %v", c.url, err)
			continue
		}
		if got.MasterName != c.want.MasterName || !slices.Equal(got.SentinelAddrs, c.want.SentinelAddrs) ||
			got.DB != c.want.DB || got.SentinelUsername != c.want.SentinelUsername ||
			got.SentinelPassword != c.want.SentinelPassword || got.Username != c.want.Username ||
			got.Password != c.want.Password || got.DialTimeout != c.want.DialTimeout ||
			got.ReadTimeout != c.want.ReadTimeout {
			t.Errorf("ParseSentinelURL(%q) = master %q addrs %v db %d sentinel %q/%q master %q/%q dial %v read %v, want %+v",
				c.url, got.MasterName, got.SentinelAddrs, got.DB, got.SentinelUsername, got.SentinelPassword,
				got.Username, got.Password, got.DialTimeout, got.ReadTimeout, c.want)
		}
		if (got.TLSConfig != nil) != c.tls {
			t.Errorf("ParseSentinelURL(%q): TLS %v, want %v", c.url, got.TLSConfig != nil, c.tls)
		}
		if c.tls && got.TLSConfig != nil && got.TLSConfig.MinVersion < tls.VersionTLS12 {
			t.Errorf("ParseSentinelURL(%q): TLS minimum %x", c.url, got.TLSConfig.MinVersion)
		}
	}

	bad := []struct{ url, want string }{
		{"redis://:secret@s1:26379?master_name=", "master_name is empty"},
		{"redis://:secret@s1:26379?master_name=%20", "master_name is empty"},
		{"redis://:secret@?master_name=m", "no sentinel address"},
		{"redis://:secret@:26379?master_name=m", "no sentinel address"},
		{"redis://:secret@s1?master_name=m", "has no port"},
		{"redis://:secret@s1:26379?master_name=m&addr=s2", "unable to parse addr param"},
		{"redis://:secret@s1:26379/x?master_name=m", "invalid database number"},
		{"redis://:secret@s1:26379/1/2?master_name=m", "invalid URL path"},
		{"redis://:secret@s1:26379?master_name=m&password=secret&bogus=1", "unexpected option: bogus"},
		{"redis://:secret@s1:26379?master_name=m&route_by_latency=true", "route_by_latency"},
		{"redis://:secret@s1:26379?master_name=m&route_randomly=true", "route_randomly"},
		{"redis://:secret@s1:26379?master_name=m&replica_only=true", "replica_only"},
		{"redis://:secret@s1:26379?password=secret", "no master name"},
		{"unix:///tmp/r.sock?master_name=m", "a Sentinel URL is redis:// or rediss://"},
		{"redis://:sec%zzret@s1:26379?master_name=m", "does not parse"},
	}
	for _, c := range bad {
		_, err := ParseSentinelURL(c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSentinelURL(%q) = %v, want an error with %q", c.url, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sec%zzret") {
			t.Errorf("ParseSentinelURL(%q) error shows the password: %v", c.url, err)
		}
	}
}

func TestIsSentinelURLOnlyWithMasterName(t *testing.T) {
	for _, u := range []string{
		"redis://h:6379", "rediss://:pw@h:6380/1", "unix:///tmp/r.sock", "unix:///tmp/r.sock?master_name=m",
		"redis+sentinel://h:26379/m", "http://h?master_name=m", "redis://h:6379?db=1", "::bad",
	} {
		if IsSentinelURL(u) {
			t.Errorf("IsSentinelURL(%q) = true", u)
		}
	}
}

func TestConnectRejectsBadSentinelURLsWithoutThePassword(t *testing.T) {
	cases := []struct{ url, want string }{
		{"redis://:secret@127.0.0.1:26379?master_name=", "master_name is empty"},
		{"redis+sentinel://:secret@h1:26379,h2:26379/mymaster", "does not read redis+sentinel:// URLs"},
		{"sentinel://:secret@h1:26379/mymaster", "does not read sentinel:// URLs"},
		{"redis://:secret@h:1?password=secret", "unexpected option: password"},
		{"redis://:sec%zzret@h:1", "does not parse"},
	}
	for _, c := range cases {
		_, err := Connect(ctxFor(t), c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Connect(%q) = %v, want an error with %q", c.url, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sec%zzret") {
			t.Errorf("Connect(%q) error shows the password: %v", c.url, err)
		}
		if !strings.Contains(err.Error(), "master_name=NAME") {
			t.Errorf("Connect(%q) error does not give the Sentinel form: %v", c.url, err)
		}
	}
}

func TestRedactURLHidesSentinelPasswords(t *testing.T) {
	cases := map[string]string{
		"redis://:s3nt@s1:26379?master_name=m&password=m4st":      "redis://:****@s1:26379?master_name=m&password=****",
		"redis://u:s3nt@s1:26379/1?password=m4st&addr=s2:26379":   "redis://u:****@s1:26379/1?password=****&addr=s2:26379",
		"redis://s1:26379?master_name=m&username=app&password=m4": "redis://s1:26379?master_name=m&username=app&password=****",
		"redis://s1:26379?Password=m4&master_name=m":              "redis://s1:26379?Password=****&master_name=m",
		"redis://s1:26379?pass%77ord=m4&master_name=m":            "redis://s1:26379?pass%77ord=****&master_name=m",
		"redis://s1:26379?master_name=m&sentinel_password=m4":     "redis://s1:26379?master_name=m&sentinel_password=****",
		"redis://s1:26379?master_name=m&password=m4#st":           "redis://s1:26379?master_name=m&password=****#****",
		"redis://s1:26379?master_name=m":                          "redis://s1:26379?master_name=m",
		"redis://:pw@h:1":                                         "redis://:****@h:1",
		"unix:///a/b.sock":                                        "unix:///a/b.sock",
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSentinelURL holds the parser and the redaction to their promises
// for any input: no panic, a parsed URL's options are usable by
// NewFailoverClient, and neither the redacted URL nor an error shows a
// password that the URL carries.
func FuzzSentinelURL(f *testing.F) {
	for _, s := range []string{
		"redis://s1:26379?master_name=m",
		"redis://u:sentpw@s1:26379/2?master_name=m&addr=s2:26379&password=masterpw&username=app",
		"rediss://:sentpw@[::1]:26379?master_name=m&dial_timeout=3",
		"redis://:sentpw@s1:26379?master_name=m&password=masterpw#frag",
		"redis://:sent%zzpw@s1:26379?master_name=m",
		"redis+sentinel://:pw@h1:26379,h2:26379/m/0",
		"redis://s1:26379?master_name=m&route_by_latency=true",
		"//:000000@000000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		fo, err := ParseSentinelURL(raw)
		if err == nil && (fo.MasterName == "" || len(fo.SentinelAddrs) == 0 || fo.RouteByLatency || fo.RouteRandomly || fo.ReplicaOnly) {
			t.Fatalf("ParseSentinelURL(%q) accepted unusable options: %+v", raw, fo)
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			return
		}
		var secrets []string
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
		q := u.Query()
		secrets = append(secrets, q["password"]...)
		shown := RedactURL(raw)
		for _, pw := range secrets {
			// A password that also stands elsewhere in the URL (as
			// "000000" in "//:000000@000000"), or short enough to, may
			// show there.
			if len(pw) < 6 || strings.Count(raw, pw) != 1 {
				continue
			}
			if strings.Contains(shown, pw) {
				t.Fatalf("RedactURL(%q) = %q shows the password %q", raw, shown, pw)
			}
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Fatalf("ParseSentinelURL(%q) error shows the password %q: %v", raw, pw, err)
			}
		}
	})
}

// TestConnectThroughSentinel connects through a real sentinel that
// monitors a real redis-server, both password-protected with different
// passwords, and writes and reads a key on the master.
func TestConnectThroughSentinel(t *testing.T) {
	const name = "tthost-test"
	master := testenv.StartRedisWith(t, testenv.RedisOptions{TCP: true})
	masterAddr := "127.0.0.1:" + strconv.Itoa(master.Port)
	if err := master.Client.ConfigSet(ctxFor(t), "requirepass", "m4ster-pw").Err(); err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSentinel(t, name, masterAddr, "requirepass s3ntinel-pw", "sentinel auth-pass "+name+" m4ster-pw")

	url := "redis://:s3ntinel-pw@" + s.Addr + "?master_name=" + name + "&password=m4ster-pw"
	c, err := Connect(ctxFor(t), url)
	if err != nil {
		t.Fatalf("Connect(%s): %v\nsentinel log:\n%s", RedactURL(url), err, s.Log())
	}
	defer c.Close()
	if err := c.Set(ctxFor(t), "tthost:sentinel-test", "through the sentinel", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinel: %v", err)
	}
	if got, err := c.Get(ctxFor(t), "tthost:sentinel-test").Result(); err != nil || got != "through the sentinel" {
		t.Fatalf("GET through the sentinel = %q, %v", got, err)
	}
	// The key is on the master itself.
	direct := redis.NewClient(&redis.Options{Addr: masterAddr, Password: "m4ster-pw"})
	defer direct.Close()
	if got := direct.Get(ctxFor(t), "tthost:sentinel-test").Val(); got != "through the sentinel" {
		t.Fatalf("the master has %q", got)
	}

	// Wrong or missing passwords, an unknown master and no sentinel fail
	// at once, with a hint and without a password in the message.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := l.Addr().String()
	l.Close() // a port nothing listens on any more
	for _, c := range []struct{ url, want string }{
		{"redis://:s3ntinel-pw@" + s.Addr + "?master_name=" + name, "NOAUTH"},
		{"redis://:s3ntinel-pw@" + s.Addr + "?master_name=" + name + "&password=wrong-pw-1", "WRONGPASS"},
		{"redis://" + s.Addr + "?master_name=" + name + "&password=m4ster-pw", "the sentinel at " + s.Addr + ": NOAUTH"},
		{"redis://:wrong-pw-1@" + s.Addr + "?master_name=" + name + "&password=m4ster-pw", "the sentinel at " + s.Addr + ": WRONGPASS"},
		{"redis://:s3ntinel-pw@" + s.Addr + "?master_name=nosuchmaster&password=m4ster-pw", `monitors no master named "nosuchmaster"`},
		{"redis://:s3ntinel-pw@" + freeAddr + "?master_name=" + name + "&password=m4ster-pw", "the sentinel at " + freeAddr + ": dial tcp"},
		// One sentinel down, the next one answers.
		{"redis://:s3ntinel-pw@" + freeAddr + "?master_name=" + name + "&password=m4ster-pw&addr=" + s.Addr, ""},
	} {
		cl, err := Connect(ctxFor(t), c.url)
		if c.want == "" {
			if err != nil {
				t.Errorf("Connect(%s): %v", RedactURL(c.url), err)
			} else {
				cl.Close()
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "get-master-addr-by-name") {
			t.Errorf("Connect(%s) = %v, want an error with %q and a hint", RedactURL(c.url), err, c.want)
			continue
		}
		for _, pw := range []string{"s3ntinel-pw", "m4ster-pw", "wrong-pw-1"} {
			if strings.Contains(err.Error(), pw) {
				t.Errorf("Connect(%s) error shows a password: %v", RedactURL(c.url), err)
			}
		}
	}
}

// TestConnectFollowsASentinelFailover: a client from a Sentinel URL keeps
// working when its master dies and the sentinel promotes the replica, and
// its writes land on the new master. (The master is killed first: while an
// old master still runs, a client that has not yet seen +switch-master
// can write to it, and those writes are lost when it is demoted — Redis
// replication is asynchronous.)
func TestConnectFollowsASentinelFailover(t *testing.T) {
	const name = "tthost-failover"
	ctx := ctxFor(t)
	// No 5 s wait for more replicas before the first sync.
	master := testenv.StartRedisWith(t, testenv.RedisOptions{TCP: true, Args: []string{"--repl-diskless-sync-delay", "0"}})
	masterAddr := "127.0.0.1:" + strconv.Itoa(master.Port)
	replica := testenv.StartRedisWith(t, testenv.RedisOptions{TCP: true,
		Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}})
	// WAIT returns once the replica acknowledged the write: it is in sync.
	if err := master.Client.Set(ctx, "tthost:failover", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Client.Wait(ctx, 1, 20*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica = %d, %v\nreplica log:\n%s", n, err, replica.Log())
	}

	s := testenv.StartSentinel(t, name, masterAddr)
	events := s.Client.Subscribe(ctx, "+slave", "+switch-master")
	defer events.Close()
	if _, err := events.Receive(ctx); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	if _, err := events.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := Connect(ctx, "redis://"+s.Addr+"?master_name="+name)
	if err != nil {
		t.Fatalf("Connect: %v\nsentinel log:\n%s", err, s.Log())
	}
	defer c.Close()

	// The sentinel learns of the replica from the master's INFO ("+slave",
	// unless it already had by the time we subscribed).
	if replicas, err := s.Client.Replicas(ctx, name).Result(); err != nil || len(replicas) == 0 {
		waitForEvent(t, ctx, events, "+slave", s)
	}
	// The master dies; the sentinel is told to fail over at once rather
	// than after its down-after period. No event says when the sentinel's
	// link to the replica is up, which FAILOVER needs (NOGOODSLAVE until
	// then): ask again on a short tick.
	master.Kill9()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.Client.Failover(ctx, name).Err()
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "NOGOODSLAVE") {
			t.Fatalf("SENTINEL FAILOVER: %v\nsentinel log:\n%s", err, s.Log())
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("SENTINEL FAILOVER still says %v\nsentinel log:\n%s", err, s.Log())
		}
	}
	msg := waitForEvent(t, ctx, events, "+switch-master", s)
	if want := strconv.Itoa(replica.Port); !strings.HasSuffix(msg, " "+want) {
		t.Fatalf("+switch-master %q: the replica on port %s was not promoted", msg, want)
	}

	if err := c.Set(ctx, "tthost:failover", "after", 0).Err(); err != nil {
		t.Fatalf("SET after the failover: %v\nsentinel log:\n%s", err, s.Log())
	}
	if got := replica.Client.Get(ctx, "tthost:failover").Val(); got != "after" {
		t.Fatalf("the new master has %q, want the write made after the failover", got)
	}
	if got := c.Get(ctx, "tthost:failover").Val(); got != "after" {
		t.Fatalf("GET through the sentinel after the failover = %q", got)
	}
}

func waitForEvent(t *testing.T, ctx context.Context, sub *redis.PubSub, channel string, s *testenv.Sentinel) string {
	t.Helper()
	for {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("no %s event from the sentinel\nsentinel log:\n%s", channel, s.Log())
			}
			t.Fatalf("sentinel events: %v", err)
		}
		if m.Channel == channel {
			return m.Payload
		}
	}
}
