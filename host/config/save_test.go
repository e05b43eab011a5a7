package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestTTWrittenFileRoundTrips loads the file `tt init` writes in central mode
// (testdata/tt-central.toml), saves it, and checks the saved bytes and that
// they load to the same config.
func TestTTWrittenFileRoundTrips(t *testing.T) {
	doc, err := os.ReadFile("testdata/tt-central.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(FileName, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("a tt-written file gave warnings: %q", c.Warnings)
	}
	if !c.UseCentralRedis || c.Redis.UseSocket || c.Redis.Port != 16379 ||
		c.Redis.Password != "tt_0123456789abcdef0123456789abcdef" {
		t.Fatalf("central-mode redis settings not loaded: %+v", c.Redis)
	}
	saved := c.Encode()
	golden(t, "tt-central.saved.toml", saved)

	again, err := Parse(FileName, saved)
	if err != nil {
		t.Fatalf("the saved file does not load: %v", err)
	}
	if !reflect.DeepEqual(again, c) {
		t.Fatalf("saved file loads differently:\n got %+v\nwant %+v", again, c)
	}

	// tt reads the file with serde; the townhall values must come back as
	// the same TOML values, not only as something tthost accepts.
	var before, after map[string]any
	if err := toml.Unmarshal(doc, &before); err != nil {
		t.Fatal(err)
	}
	if err := toml.Unmarshal(saved, &after); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before["townhall"], after["townhall"]) {
		t.Fatalf("[townhall] changed:\n got %#v\nwant %#v", after["townhall"], before["townhall"])
	}
	delete(after, "tthost")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("apart from [tthost], the saved file is not the same TOML document:\n got %#v\nwant %#v", after, before)
	}
}

func TestNewWritesTheInitFile(t *testing.T) {
	golden(t, "new.toml", New("myrepo-main").Encode())
}

func TestNewHasTheBuiltInPresets(t *testing.T) {
	c := New("t")
	want := map[string]string{
		"claude":     "claude --print --dangerously-skip-permissions",
		"auggie":     "auggie --print",
		"codex":      "codex exec --dangerously-bypass-approvals-and-sandbox",
		"codex-mini": `codex exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`,
		"aider":      "aider --yes --no-auto-commits --message",
		"gemini":     "gemini",
		"copilot":    "gh copilot",
		"cursor":     "cursor",
	}
	if got := Presets(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Presets() = %v, want %v", got, want)
	}
	got := map[string]string{}
	for k, cli := range c.AgentCLIs {
		if cli.Name != k {
			t.Errorf("agent_clis.%s has name %q", k, cli.Name)
		}
		got[k] = cli.Command
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("New agent_clis = %v, want %v", got, want)
	}
	p := Presets()
	p["claude"] = "changed"
	if Presets()["claude"] == "changed" {
		t.Fatal("Presets returned the package's own map")
	}
}

func TestSaveThenLoadGivesTheSameConfig(t *testing.T) {
	c := New("round-trip")
	c.DefaultCLI = "codex"
	c.ConductorCLI = "claude"
	c.MaxAgents = 3
	c.UseStreams = true
	c.Redis.URL = "rediss://:p%40ss@redis.example:6380"
	c.Redis.Password = `quote " backslash \ tab` + "\t" + `newline` + "\n" + "bell\x07 ünïcode"
	c.Redis.TLSEnabled = true
	c.Redis.TLSCert, c.Redis.TLSKey, c.Redis.TLSCACert = "c.pem", "k.pem", "ca.pem"
	c.Agent.IdleTimeoutSecs = 0
	c.Agent.Persistent = true
	cli := c.AgentCLIs["codex"]
	cli.Backend = "codex"
	cli.Workdir = "/src"
	cli.Env = map[string]string{"B": "2", "A": "1", "with space": "x"}
	c.AgentCLIs["codex"] = cli
	c.AgentCLIs["my tool"] = AgentCLI{Name: "my tool", Command: "tool --go", Env: map[string]string{}}
	c.TTHost = TTHostConfig{PluginDir: "/opt/plugins", SafetyPollSecs: 2, HeartbeatSecs: 10, StopGraceSecs: 0, RedisServer: RedisServerEmbedded,
		RedisOutageSecs: 30, MaxTurnMessages: 7, MaxTurnBytes: 4096, TurnPollMillis: 100, Notifications: NotificationsOff}

	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("Save left files behind: %v", entries)
	}
	// Saving the loaded config again gives the same bytes.
	first, _ := os.ReadFile(path)
	if string(got.Encode()) != string(first) {
		t.Fatal("a second Save of the same config wrote different bytes")
	}
}

func TestSaveKeepsTheFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte("name = \"t\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New("t").Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600 (the file may hold a password)", fi.Mode().Perm())
	}
}

func TestTownhallContentSurvivesSave(t *testing.T) {
	doc := `name = "t"

[townhall]
rest_port = 9090
extra_future_key = "kept"
allowed = ["a", "b"]
limits = [{ name = "x", max = 2.5 }, { name = "y", max = 1e300 }]
since = 1979-05-27T07:32:00-08:00
day = 1979-05-27
at = 07:32:00.5
local = 1979-05-27T07:32:00
[townhall.auth]
mode = "api_key"
api_key_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
api_key_scopes = ["town.read", "admin"]
[townhall.auth.deeper]
"odd key" = -0.0
[townhall.mtls]
enabled = true
`
	c, err := Parse(FileName, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("[townhall] keys gave warnings: %q", c.Warnings)
	}
	saved := c.Encode()
	var before, after map[string]any
	if err := toml.Unmarshal([]byte(doc), &before); err != nil {
		t.Fatal(err)
	}
	if err := toml.Unmarshal(saved, &after); err != nil {
		t.Fatalf("saved file is not TOML: %v\n%s", err, saved)
	}
	if !reflect.DeepEqual(before["townhall"], after["townhall"]) {
		t.Fatalf("[townhall] changed:\n got %#v\nwant %#v\n%s", after["townhall"], before["townhall"], saved)
	}
	if since, ok := after["townhall"].(map[string]any)["since"].(time.Time); !ok || since.Unix() != 296667120 {
		t.Fatalf("offset date-time not kept: %#v", after["townhall"].(map[string]any)["since"])
	}
	if !strings.Contains(string(saved), "[townhall.auth.deeper]") {
		t.Fatalf("nested townhall table lost:\n%s", saved)
	}
}

func TestBackendOptionsRoundTrip(t *testing.T) {
	c := New("town")
	c.TTHost.Backends = map[string]map[string]string{
		"codex": {"codex_home": "/srv/codex home", "approval_policy": "never"},
	}
	got, err := Parse("tinytown.toml", c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != 0 {
		t.Errorf("warnings: %v", got.Warnings)
	}
	if v := got.TTHost.Backends["codex"]["codex_home"]; v != "/srv/codex home" {
		t.Errorf("codex_home = %q", v)
	}
	if !strings.Contains(string(c.Encode()), "[tthost.backends.codex]") {
		t.Errorf("no [tthost.backends.codex] table in:\n%s", c.Encode())
	}
	if _, err := Parse("tinytown.toml", []byte("name = \"x\"\n[tthost.backends.codex]\ncodex_home = 3\n")); err == nil ||
		!strings.Contains(err.Error(), "tinytown.toml:") {
		t.Errorf("a non-string option: %v; want a positioned error", err)
	}
}
