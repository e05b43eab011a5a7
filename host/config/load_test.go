package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTown writes doc as tinytown.toml in a fresh directory and returns it.
func writeTown(t *testing.T, doc string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadMissingFileSaysRunInit(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Load: err = %v, want ErrNotInitialized", err)
	}
	want := "no town in " + dir + " (tinytown.toml not found): run `tthost init`"
	if err.Error() != want {
		t.Fatalf("Load: err = %q, want %q", err, want)
	}
}

func TestLoadAppliesTTDefaults(t *testing.T) {
	c, err := Load(writeTown(t, "name = \"town\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Name = "town"
	want.Warnings = nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	// Spot-check the values the ref names, so a change to defaults() that
	// drifts from tt is caught here and not only by DeepEqual.
	checks := []struct {
		name      string
		got, want any
	}{
		{"default_cli", c.DefaultCLI, "claude"},
		{"conductor falls back to default_cli", c.Conductor(), "claude"},
		{"max_agents", c.MaxAgents, 10},
		{"use_central_redis", c.UseCentralRedis, false},
		{"use_streams", c.UseStreams, false},
		{"redis.use_socket", c.Redis.UseSocket, true},
		{"redis.socket_path", c.Redis.SocketPath, ".tt/redis.sock"},
		{"redis.host", c.Redis.Host, "127.0.0.1"},
		{"redis.port", c.Redis.Port, 6379},
		{"redis.aof_path", c.Redis.AOFPath, ".tt/redis.aof"},
		{"redis.bind", c.Redis.Bind, "127.0.0.1"},
		{"redis.url", c.Redis.URL, ""},
		{"agent.idle_timeout_secs", c.Agent.IdleTimeoutSecs, int64(300)},
		{"agent.persistent", c.Agent.Persistent, false},
		{"no presets merged into a loaded file", len(c.AgentCLIs), 0},
		{"tthost.plugin_dir", c.TTHost.PluginDir, ""},
		{"tthost.safety_poll_secs", c.TTHost.SafetyPollSecs, 5},
		{"tthost.heartbeat_secs", c.TTHost.HeartbeatSecs, 60},
		{"tthost.stop_grace_secs", c.TTHost.StopGraceSecs, 5},
		{"tthost.reattach_window_secs", c.TTHost.ReattachWindowSecs, 180},
		{"tthost.redis_server", c.TTHost.RedisServer, "auto"},
		{"tthost.notifications", c.TTHost.Notifications, "auto"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadKeepsExplicitZeroIdleTimeout(t *testing.T) {
	c, err := Load(writeTown(t, "name = \"t\"\n[agent]\nidle_timeout_secs = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.IdleTimeoutSecs != 0 {
		t.Fatalf("idle_timeout_secs = %d, want 0 (disabled)", c.Agent.IdleTimeoutSecs)
	}
}

func TestLoadNormalizesLegacyCLIValues(t *testing.T) {
	cases := []struct {
		name, value, want string
	}{
		{"claude command line", "claude --print --dangerously-skip-permissions", "claude"},
		{"auggie command line", "auggie --print", "auggie"},
		{"old codex command line", "codex --dangerously-bypass-approvals-and-sandbox", "codex"},
		{"codex exec command line", "codex exec --dangerously-bypass-approvals-and-sandbox", "codex"},
		{"codex-mini command line", `codex exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`, "codex-mini"},
		{"aider command line", "aider --yes --no-auto-commits --message", "aider"},
		{"surrounding spaces", "  auggie --print ", "auggie"},
		{"a preset name stays", "gemini", "gemini"},
		{"a custom command stays", "my-agent --fast", "my-agent --fast"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "name = \"t\"\ndefault_cli = " + quote(tc.value) + "\nconductor_cli = " + quote(tc.value) + "\n"
			c, err := Load(writeTown(t, doc))
			if err != nil {
				t.Fatal(err)
			}
			if c.DefaultCLI != tc.want || c.ConductorCLI != tc.want {
				t.Fatalf("default_cli = %q, conductor_cli = %q, want %q", c.DefaultCLI, c.ConductorCLI, tc.want)
			}
		})
	}
}

func TestLoadErrorsNameFileLineAndColumn(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string // the whole error, after "tinytown.toml"
	}{
		{
			name: "a syntax error",
			doc:  "name = \"t\"\n[redis\nport = 1\n",
			want: ":2:7: expected ']' to close table name",
		},
		{
			name: "a string where an integer belongs",
			doc:  "name = \"t\"\n\n[tthost]\nsafety_poll_secs = \"fast\"\n",
			want: ":4:20: tthost.safety_poll_secs must be an integer, not a TOML string",
		},
		{
			name: "an integer where a string belongs",
			doc:  "name = 5\n",
			want: ":1:8: name must be a string, not a TOML integer",
		},
		{
			name: "a table where a string belongs",
			doc:  "name = \"t\"\n[agent_clis.x]\nname = \"x\"\ncommand = \"c\"\nenv = 3\n",
			want: ":5:7: agent_clis.x.env must be a table, not a TOML integer",
		},
		{
			name: "a duplicate key",
			doc:  "name = \"t\"\nname = \"u\"\n",
			want: ":2:1: name: key name is already defined",
		},
		{
			name: "an out-of-range tthost setting",
			doc:  "name = \"t\"\n[tthost]\n  heartbeat_secs = 0\n",
			want: ":3:3: tthost.heartbeat_secs = 0 is out of range: it must be from 1 to 3600 seconds",
		},
		{
			name: "a port tt cannot hold",
			doc:  "name = \"t\"\n[redis]\nport = 70000\n",
			want: ":3:1: redis.port = 70000 is out of range: it must be from 0 to 65535",
		},
		{
			name: "a negative idle timeout",
			doc:  "name = \"t\"\n[agent]\nidle_timeout_secs = -1\n",
			want: ":3:1: agent.idle_timeout_secs = -1 is out of range: it must be from 0 to 9007199254740992 seconds (0 disables the idle timeout)",
		},
		{
			name: "an unknown redis_server",
			doc:  "name = \"t\"\n[tthost]\nredis_server = \"valkey\"\n",
			want: `:3:1: tthost.redis_server = "valkey" is not one of "auto", "redis-server" or "embedded"`,
		},
		{
			name: "an unknown notifications policy",
			doc:  "name = \"t\"\n[tthost]\nnotifications = \"on\"\n",
			want: `:3:1: tthost.notifications = "on" is not "auto" (use keyspace notifications, enabling them when permitted) or "off" (never; poll)`,
		},
		{
			name: "a CLI without a command",
			doc:  "name = \"t\"\n\n[agent_clis.mine]\nname = \"mine\"\n",
			want: ":3:2: [agent_clis.mine] has no `command`",
		},
		{
			name: "a CLI with an empty command",
			doc:  "name = \"t\"\n[agent_clis.mine]\ncommand = \" \"\n",
			want: ":3:1: [agent_clis.mine] command is empty",
		},
		{
			name: "an empty town name",
			doc:  "name = \"\"\n",
			want: ":1:1: name must not be empty",
		},
		{
			name: "a missing town name has no position",
			doc:  "default_cli = \"claude\"\n",
			want: ": missing required key `name` (the town name used in every Redis key)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Relative to the town dir, the file is plain "tinytown.toml",
			// which is how a user in the town directory sees it.
			t.Chdir(writeTown(t, tc.doc))
			_, err := Load(".")
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if got, want := err.Error(), "tinytown.toml"+tc.want; got != want {
				t.Fatalf("error:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestLoadErrorNamesTheFullPathFromElsewhere(t *testing.T) {
	dir := writeTown(t, "name = 1\n")
	_, err := Load(dir)
	want := filepath.Join(dir, FileName) + ":1:8: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 1 || ce.Column != 8 {
		t.Fatalf("error = %#v, want a *config.Error at 1:8", err)
	}
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Load(writeTown(t, "name = \"t\"\n[tthost]\nheartbeat_secs = 0\nsafety_poll_secs = 0\n"))
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	if n := strings.Count(err.Error(), "is out of range"); n != 2 {
		t.Fatalf("error names %d problems, want 2:\n%v", n, err)
	}
}

func TestUnknownKeysAreWarningsWithPositions(t *testing.T) {
	doc := `name = "t"
colour = "blue"

[agent]
idle_timeout_secs = 60
nap = true

[agent_clis.codex]
name = "codex"
command = "codex exec"
model = "o3"

[future]
x = 1
`
	dir := writeTown(t, doc)
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, FileName)
	want := []string{
		file + ":2:1: unknown key colour is ignored (and kept when tthost rewrites the file)",
		file + ":6:1: unknown key agent.nap is ignored (and kept when tthost rewrites the file)",
		file + ":11:1: unknown key agent_clis.codex.model is ignored (and kept when tthost rewrites the file)",
		file + ":13:2: unknown key future is ignored (and kept when tthost rewrites the file)",
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Fatalf("warnings:\n got %q\nwant %q", c.Warnings, want)
	}
	if c.Agent.IdleTimeoutSecs != 60 || c.AgentCLIs["codex"].Command != "codex exec" {
		t.Fatalf("known keys next to unknown ones were not decoded: %+v", c)
	}

	// Save keeps the unknown keys, so a newer tt's settings survive.
	if err := c.Save(file); err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Warnings) != len(want) {
		t.Fatalf("after Save, warnings = %q; the unknown keys were not kept", again.Warnings)
	}
	saved, _ := os.ReadFile(file)
	for _, line := range []string{"colour = \"blue\"", "nap = true", "model = \"o3\"", "[future]\nx = 1"} {
		if !strings.Contains(string(saved), line) {
			t.Errorf("saved file lacks %q:\n%s", line, saved)
		}
	}
}

func TestLoadFillsAMissingCLINameFromItsKey(t *testing.T) {
	c, err := Load(writeTown(t, "name = \"t\"\n[agent_clis.mine]\ncommand = \"mine --go\"\nbackend = \"oneshot\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.AgentCLIs["mine"]
	want := AgentCLI{Name: "mine", Command: "mine --go", Backend: "oneshot", Env: map[string]string{}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("agent_clis.mine = %+v, want %+v", got, want)
	}
}

// Per-CLI backend options override the backend's shared ones key by key,
// only for that CLI, and survive a save.
func TestPerCLIOptionsOverrideTheBackendsAndRoundTrip(t *testing.T) {
	dir := writeTown(t, `name = "t"
[agent_clis.gemini]
command = "gemini --acp"
backend = "acp"
[agent_clis.gemini.options]
steer_mode = "restart"
[agent_clis.qwen]
command = "qwen --acp"
backend = "acp"
[tthost.backends.acp]
steer_mode = "queue"
approval_timeout_ms = "5000"
`)
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cli  string
		want map[string]string
	}{
		{"gemini", map[string]string{"steer_mode": "restart", "approval_timeout_ms": "5000"}},
		{"qwen", map[string]string{"steer_mode": "queue", "approval_timeout_ms": "5000"}},
	} {
		if got := c.BackendOptions("acp", tc.cli); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("options of %s: %v, want %v", tc.cli, got, tc.want)
		}
	}
	if got := c.BackendOptions("codex", "codex"); got != nil {
		t.Errorf("a backend without options got %v", got)
	}
	got := c.BackendOptions("acp", "gemini")
	got["steer_mode"] = "changed"
	if c.AgentCLIs["gemini"].Options["steer_mode"] != "restart" || c.TTHost.Backends["acp"]["steer_mode"] != "queue" {
		t.Error("BackendOptions returned the config's own map")
	}
	if err := c.Save(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.AgentCLIs["gemini"].Options, map[string]string{"steer_mode": "restart"}) {
		t.Errorf("after a save: %v", again.AgentCLIs["gemini"].Options)
	}
}
