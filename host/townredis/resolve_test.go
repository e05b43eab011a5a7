package townredis

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/config"
)

func TestResolve(t *testing.T) {
	townDir := t.TempDir()
	sock := filepath.Join(townDir, ".tt", "redis.sock")

	type env map[string]string
	cases := []struct {
		name string
		env  env
		edit func(*config.Config)
		want Endpoint
	}{
		{
			name: "REDIS_URL wins over [redis].url and the socket",
			env:  env{"REDIS_URL": "redis://elsewhere:6379/0"},
			edit: func(c *config.Config) { c.Redis.URL = "redis://config:6379" },
			want: Endpoint{URL: "redis://elsewhere:6379/0", Source: "REDIS_URL"},
		},
		{
			name: "REDIS_URL is trimmed",
			env:  env{"REDIS_URL": "  redis://elsewhere:6379 \n"},
			want: Endpoint{URL: "redis://elsewhere:6379", Source: "REDIS_URL"},
		},
		{
			name: "a blank REDIS_URL is ignored",
			env:  env{"REDIS_URL": "   "},
			edit: func(c *config.Config) { c.Redis.URL = "rediss://config:6380" },
			want: Endpoint{URL: "rediss://config:6380", Source: "[redis].url in tinytown.toml"},
		},
		{
			name: "[redis].url wins over the socket",
			edit: func(c *config.Config) { c.Redis.URL = "redis://config:6379" },
			want: Endpoint{URL: "redis://config:6379", Source: "[redis].url in tinytown.toml"},
		},
		{
			name: "a blank [redis].url is ignored",
			edit: func(c *config.Config) { c.Redis.URL = " " },
			want: Endpoint{URL: "unix://" + sock, Source: "town socket", Managed: true, SocketPath: sock},
		},
		{
			name: "the town socket by default, with no password",
			env:  env{"TINYTOWN_REDIS_PASSWORD": "ignored"},
			edit: func(c *config.Config) { c.Redis.Password = "ignored too" },
			want: Endpoint{URL: "unix://" + sock, Source: "town socket", Managed: true, SocketPath: sock},
		},
		{
			name: "an absolute socket_path is used as is",
			edit: func(c *config.Config) { c.Redis.SocketPath = "/run/tt/r.sock" },
			want: Endpoint{URL: "unix:///run/tt/r.sock", Source: "town socket", Managed: true, SocketPath: "/run/tt/r.sock"},
		},
		{
			name: "tcp without a password",
			edit: func(c *config.Config) { c.Redis.UseSocket = false },
			want: Endpoint{URL: "redis://127.0.0.1:6379", Source: "tcp host/port"},
		},
		{
			name: "tcp with the config password, as tt spells it",
			edit: func(c *config.Config) {
				c.Redis.UseSocket, c.Redis.Port = false, 16379
				c.Redis.Password = "tt_0123456789abcdef0123456789abcdef"
			},
			want: Endpoint{URL: "redis://:tt_0123456789abcdef0123456789abcdef@127.0.0.1:16379", Source: "tcp host/port"},
		},
		{
			name: "TINYTOWN_REDIS_PASSWORD wins over the config password",
			env:  env{"TINYTOWN_REDIS_PASSWORD": "fromenv"},
			edit: func(c *config.Config) { c.Redis.UseSocket, c.Redis.Password = false, "fromfile" },
			want: Endpoint{URL: "redis://:fromenv@127.0.0.1:6379", Source: "tcp host/port"},
		},
		{
			name: "tls uses rediss",
			edit: func(c *config.Config) {
				c.Redis.UseSocket, c.Redis.TLSEnabled, c.Redis.Host, c.Redis.Port = false, true, "redis.example", 6380
			},
			want: Endpoint{URL: "rediss://redis.example:6380", Source: "tcp host/port"},
		},
		{
			name: "an IPv6 host is bracketed",
			edit: func(c *config.Config) { c.Redis.UseSocket, c.Redis.Host = false, "::1" },
			want: Endpoint{URL: "redis://[::1]:6379", Source: "tcp host/port"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := config.New("t")
			if tc.edit != nil {
				tc.edit(c)
			}
			got, err := Resolve(c, townDir, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Resolve:\n got %+v\nwant %+v", got, tc.want)
			}
			if _, err := redis.ParseURL(got.URL); err != nil && !strings.Contains(got.URL, "elsewhere") {
				t.Fatalf("go-redis cannot parse %q: %v", got.URL, err)
			}
		})
	}
}

func TestResolveRelativeTownDirGivesAnAbsoluteSocket(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ep, err := Resolve(config.New("t"), ".", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, ".tt", "redis.sock"); ep.SocketPath != want || ep.URL != "unix://"+want {
		t.Fatalf("endpoint = %+v, want socket %s", ep, want)
	}
}

func TestResolvePasswordWithURLCharactersSurvivesParsing(t *testing.T) {
	c := config.New("t")
	c.Redis.UseSocket = false
	c.Redis.Password = "p@ss/w:rd#?"
	ep, err := Resolve(c, t.TempDir(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(ep.URL)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", ep.URL, err)
	}
	if opts.Password != c.Redis.Password || opts.Addr != "127.0.0.1:6379" {
		t.Fatalf("parsed password %q addr %q, want %q 127.0.0.1:6379", opts.Password, opts.Addr, c.Redis.Password)
	}
	if got := ep.Redacted(); got != "redis://:****@127.0.0.1:6379" {
		t.Fatalf("Redacted() = %q", got)
	}
}

func TestResolveRejectsASocketPathTooLongForUnix(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 100)
	_, err := Resolve(config.New("t"), long, func(string) string { return "" })
	if err == nil {
		t.Fatal("Resolve accepted a socket path over 107 bytes")
	}
	for _, want := range []string{"longer than the 107", "move the town", "[redis].url", long} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// At exactly 107 bytes it is accepted.
	dir := "/" + strings.Repeat("d", MaxSocketPath-len("/.tt/redis.sock")-1)
	ep, err := Resolve(config.New("t"), dir, func(string) string { return "" })
	if err != nil || len(ep.SocketPath) != MaxSocketPath {
		t.Fatalf("a %d-byte path: %v (%d bytes)", MaxSocketPath, err, len(ep.SocketPath))
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"redis://:secret@h:1":      "redis://:****@h:1",
		"rediss://user:secret@h:1": "rediss://user:****@h:1",
		"redis://h:1":              "redis://h:1",
		"unix:///a/b.sock":         "unix:///a/b.sock",
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
