// Package config reads and writes a town's tinytown.toml the way Tinytown
// (`tt`) does, so tthost and tt can share one town directory.
//
// The file keeps the layout and defaults `tt init` writes. tthost's own
// settings live in a [tthost] section, which tt ignores, and in an
// optional `backend` key of each [agent_clis.<name>] table. Load
// applies tt's defaults, normalizes legacy CLI values and reports errors as
// "tinytown.toml:LINE:COL: …"; keys it does not know are warnings, and they
// are kept when Save writes the file back, as is the whole [townhall] table,
// which tthost does not interpret.
package config

import (
	"maps"
)

// FileName is the name of a town's config file in its root directory.
const FileName = "tinytown.toml"

// Redis server kinds for [tthost] redis_server: what to start for the
// town-private Redis.
const (
	RedisServerAuto     = "auto"         // redis-server when installed, else embedded
	RedisServerReal     = "redis-server" // the real redis-server, or fail
	RedisServerEmbedded = "embedded"     // the in-memory embedded server
)

// Policies for [tthost] notifications: whether workers use Redis keyspace
// notifications to see writers that send no wake signal (tt).
const (
	// NotificationsAuto uses them when the server has them on, and turns
	// them on (CONFIG SET, adding to the flags already set) when permitted.
	NotificationsAuto = "auto"
	// NotificationsOff never uses or enables them: such writers are seen
	// at the next poll.
	NotificationsOff = "off"
)

// Config is a town's tinytown.toml.
type Config struct {
	// Name is the town name used in every Redis key (required).
	Name string `toml:"name"`
	// DefaultCLI is the CLI an agent gets when none is named.
	DefaultCLI string `toml:"default_cli"`
	// ConductorCLI is optional; "" means DefaultCLI (see Conductor).
	ConductorCLI string `toml:"conductor_cli"`
	// MaxAgents is only used by townhall's scaling metrics.
	MaxAgents       int         `toml:"max_agents"`
	UseCentralRedis bool        `toml:"use_central_redis"`
	UseStreams      bool        `toml:"use_streams"`
	Redis           RedisConfig `toml:"redis"`
	// Townhall is tt's REST server section. tthost does not use it, so it
	// is kept as raw TOML values and written back as loaded.
	Townhall  map[string]any      `toml:"townhall"`
	Agent     AgentConfig         `toml:"agent"`
	AgentCLIs map[string]AgentCLI `toml:"agent_clis"`
	// TTHost holds tthost's own settings ([tthost]; tt ignores it).
	TTHost TTHostConfig `toml:"tthost"`

	// Warnings lists what Load accepted but did not understand, each
	// "FILE:LINE:COL: …" where the position is known.
	Warnings []string `toml:"-"`

	// extra holds unknown top-level keys, written back by Save.
	extra map[string]any
}

// RedisConfig is the [redis] table. The defaults are tt's per-town socket
// defaults.
type RedisConfig struct {
	// URL, when set, overrides everything else (an external Redis).
	URL        string `toml:"url"`
	UseSocket  bool   `toml:"use_socket"`
	SocketPath string `toml:"socket_path"` // relative to the town root
	Host       string `toml:"host"`
	Port       int    `toml:"port"`
	Persist    bool   `toml:"persist"` // unused by tt
	AOFPath    string `toml:"aof_path"`
	// Password is "" for none. tt's central mode stores it here in plain text.
	Password   string `toml:"password"`
	TLSEnabled bool   `toml:"tls_enabled"`
	TLSCert    string `toml:"tls_cert"`
	TLSKey     string `toml:"tls_key"`
	TLSCACert  string `toml:"tls_ca_cert"`
	Bind       string `toml:"bind"`

	extra map[string]any
}

// AgentConfig is the [agent] table.
type AgentConfig struct {
	// IdleTimeoutSecs: after this many idle seconds with no current task a
	// worker drains and exits; 0 disables the timeout.
	IdleTimeoutSecs int64 `toml:"idle_timeout_secs"`
	// Persistent opts codex and codex-mini into one long-lived session.
	Persistent bool `toml:"persistent"`

	extra map[string]any
}

// AgentCLI is one [agent_clis.<name>] table.
type AgentCLI struct {
	Name    string `toml:"name"`
	Command string `toml:"command"`
	// Workdir and Env are accepted and kept; tt's agent-loop ignores them.
	Workdir string            `toml:"workdir"`
	Env     map[string]string `toml:"env"`
	// Backend names the tthost backend plugin that serves this CLI ("" lets
	// the host choose). A tthost extension: tt ignores the key.
	Backend string `toml:"backend"`
	// Options are backend options for this CLI only, [agent_clis.<name>.options]:
	// they override [tthost.backends.<backend>] for agents of this CLI, e.g.
	// steer_mode = "restart" for one ACP agent. A tthost extension.
	Options map[string]string `toml:"options"`

	extra map[string]any
}

// DefaultMaxTurnBytes is max_turn_bytes's default (1 MiB) and
// MaxTurnBytesLimit its ceiling: a turn's prompt must stay well under the
// 16 MiB the plugin protocol's messages may carry (docs/protocol.md).
const (
	DefaultMaxTurnBytes = 1 << 20
	MaxTurnBytesLimit   = 8 << 20
)

// TTHostConfig is tthost's own [tthost] section.
type TTHostConfig struct {
	// PluginDir is an extra directory to look for backend plugins in ("" = none).
	PluginDir string `toml:"plugin_dir"`
	// SafetyPollSecs is how often a waiting agent re-checks Redis for
	// writers that send no wake signal (tt itself).
	SafetyPollSecs int `toml:"safety_poll_secs"`
	// HeartbeatSecs is the interval of an agent's heartbeat (and of its
	// worker-lease refresh); tt recover treats 120 s without one as dead.
	HeartbeatSecs int `toml:"heartbeat_secs"`
	// StopGraceSecs is how long a plugin or CLI gets to stop before SIGKILL.
	StopGraceSecs int `toml:"stop_grace_secs"`
	// ReattachWindowSecs is how long the plugins of a host (serve or
	// agent-loop) that died or restarted keep its sessions and running
	// turns for its next process to reattach; 0 makes them stop with it.
	// Another host taking the agents over waits for the window to pass
	// before it delivers their in-flight messages again.
	ReattachWindowSecs int `toml:"reattach_window_secs"`
	// RedisOutageSecs is how long a worker rides out an unreachable Redis,
	// retrying with backoff and keeping its outcomes until they can be
	// written, before it exits with an error.
	RedisOutageSecs int `toml:"redis_outage_secs"`
	// MaxTurnMessages and MaxTurnBytes bound what one turn takes from the
	// queues; the rest waits, in order, for the next turns. A single
	// message larger than MaxTurnBytes is dead-lettered.
	MaxTurnMessages int `toml:"max_turn_messages"`
	MaxTurnBytes    int `toml:"max_turn_bytes"`
	// TurnPollMillis is how often a running turn polls the stop flag and
	// the urgent list when Redis keyspace notifications are unavailable.
	TurnPollMillis int `toml:"turn_poll_ms"`
	// RedisServer says what to start for the town-private Redis:
	// RedisServerAuto, RedisServerReal or RedisServerEmbedded.
	RedisServer string `toml:"redis_server"`
	// Notifications is NotificationsAuto or NotificationsOff (see
	// host/notify).
	Notifications string `toml:"notifications"`
	// Backends holds each backend plugin's settings, [tthost.backends.<name>]:
	// string options passed to the plugin with every session (validated by
	// the plugin against the options schema it declares), e.g.
	// [tthost.backends.codex] codex_home = "/srv/codex".
	Backends map[string]map[string]string `toml:"backends"`

	extra map[string]any
}

// presets are tt's built-in CLI command lines, exactly as tt has them.
var presets = map[string]string{
	"claude":     "claude --print --dangerously-skip-permissions",
	"auggie":     "auggie --print",
	"codex":      "codex exec --dangerously-bypass-approvals-and-sandbox",
	"codex-mini": `codex exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`,
	"aider":      "aider --yes --no-auto-commits --message",
	"gemini":     "gemini",
	"copilot":    "gh copilot",
	"cursor":     "cursor",
}

// BackendOptions are the options a session of cli on backend gets:
// [tthost.backends.<backend>], overridden key by key by
// [agent_clis.<cli>.options]. The map is a copy; nil when there are none.
func (c *Config) BackendOptions(backend, cli string) map[string]string {
	shared, own := c.TTHost.Backends[backend], c.AgentCLIs[cli].Options
	if len(shared) == 0 && len(own) == 0 {
		return nil
	}
	out := maps.Clone(shared)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, own)
	return out
}

// Presets returns tt's built-in CLIs, name to command line. The map is a
// copy the caller may change.
func Presets() map[string]string { return maps.Clone(presets) }

// defaults returns a Config with every default tt's deserializer applies to
// a missing field. It has no CLIs: a loaded file uses only its own entries.
func defaults() *Config {
	return &Config{
		DefaultCLI: "claude",
		MaxAgents:  10,
		Redis: RedisConfig{
			UseSocket:  true,
			SocketPath: ".tt/redis.sock",
			Host:       "127.0.0.1",
			Port:       6379,
			AOFPath:    ".tt/redis.aof",
			Bind:       "127.0.0.1",
		},
		Agent: AgentConfig{IdleTimeoutSecs: 300},
		TTHost: TTHostConfig{
			SafetyPollSecs:     5,
			HeartbeatSecs:      60,
			StopGraceSecs:      5,
			ReattachWindowSecs: 180,
			RedisOutageSecs:    300,
			MaxTurnMessages:    100,
			MaxTurnBytes:       DefaultMaxTurnBytes,
			TurnPollMillis:     250,
			RedisServer:        RedisServerAuto,
			Notifications:      NotificationsAuto,
		},
	}
}

// defaultTownhall is what tt writes for [townhall] in a new town.
func defaultTownhall() map[string]any {
	return map[string]any{
		"bind":               "127.0.0.1",
		"rest_port":          int64(8080),
		"request_timeout_ms": int64(30000),
		"auth": map[string]any{
			"mode":               "none",
			"api_key_scopes":     []any{},
			"required_scopes":    []any{},
			"clock_skew_seconds": int64(60),
		},
		"tls":  map[string]any{"enabled": false},
		"mtls": map[string]any{"enabled": false, "required": false},
	}
}

// New returns the config `tthost init` writes for a new town: the defaults
// (a per-town Redis socket in .tt/) plus tt's built-in CLI presets.
func New(name string) *Config {
	c := defaults()
	c.Name = name
	c.Townhall = defaultTownhall()
	c.AgentCLIs = make(map[string]AgentCLI, len(presets))
	for n, cmd := range presets {
		c.AgentCLIs[n] = AgentCLI{Name: n, Command: cmd, Env: map[string]string{}}
	}
	return c
}

// Conductor returns the conductor's CLI reference: conductor_cli, else
// default_cli.
func (c *Config) Conductor() string {
	if c.ConductorCLI != "" {
		return c.ConductorCLI
	}
	return c.DefaultCLI
}
