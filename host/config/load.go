package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// ErrNotInitialized is wrapped by Load's error when the directory has no
// tinytown.toml.
var ErrNotInitialized = errors.New("town not initialized")

type notInitializedError struct{ dir string }

func (e *notInitializedError) Error() string {
	return fmt.Sprintf("no town in %s (%s not found): run `tthost init`", e.dir, FileName)
}

func (e *notInitializedError) Unwrap() error { return ErrNotInitialized }

// Error is a problem in a config file. Line and Column are 1-based, and 0
// when the position is unknown (a key that is missing, say).
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads <townDir>/tinytown.toml, applies tt's defaults, normalizes
// legacy CLI values and validates the result. Unknown keys do not fail the
// load: they are listed in Config.Warnings and kept for Save.
func Load(townDir string) (*Config, error) {
	file := filepath.Join(townDir, FileName)
	doc, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		dir := townDir
		if abs, aerr := filepath.Abs(townDir); aerr == nil {
			dir = abs
		}
		return nil, &notInitializedError{dir: dir}
	}
	if err != nil {
		return nil, fmt.Errorf("read town config: %w", err)
	}
	return Parse(file, doc)
}

// Parse is Load for a document already in memory; file names it in errors
// and warnings.
func Parse(file string, doc []byte) (*Config, error) {
	c := defaults()
	// A strict pass names every unknown key with its position; the unknown
	// keys are then only warnings, so a lenient pass does the real decode.
	err := toml.NewDecoder(bytes.NewReader(doc)).DisallowUnknownFields().Decode(c)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, col := e.Position()
			w := &Error{File: file, Line: line, Column: col,
				Msg: fmt.Sprintf("unknown key %s is ignored (and kept when tthost rewrites the file)", dottedKey(e.Key()))}
			c.Warnings = append(c.Warnings, w.Error())
		}
		warnings := c.Warnings
		c = defaults()
		c.Warnings = warnings
		err = toml.Unmarshal(doc, c)
	}
	if err != nil {
		return nil, decodeError(file, err)
	}

	// The generic view tells present from missing and holds the unknown keys.
	var raw map[string]any
	if err := toml.Unmarshal(doc, &raw); err != nil {
		return nil, decodeError(file, err)
	}
	var errs []error
	fail := func(key []string, format string, args ...any) {
		e := &Error{File: file, Msg: fmt.Sprintf(format, args...)}
		e.Line, e.Column = keyPosition(doc, key)
		errs = append(errs, e)
	}

	if _, ok := raw["name"]; !ok {
		errs = append(errs, &Error{File: file, Msg: "missing required key `name` (the town name used in every Redis key)"})
	} else if strings.TrimSpace(c.Name) == "" {
		fail([]string{"name"}, "name must not be empty")
	}
	c.extra = unknownKeys(raw, knownTop)
	c.Redis.extra = unknownKeys(table(raw, "redis"), knownRedis)
	c.Agent.extra = unknownKeys(table(raw, "agent"), knownAgent)
	c.TTHost.extra = unknownKeys(table(raw, "tthost"), knownTTHost)
	clis := table(raw, "agent_clis")
	for _, key := range slices.Sorted(maps.Keys(c.AgentCLIs)) {
		cli := c.AgentCLIs[key]
		entry, _ := clis[key].(map[string]any)
		if _, ok := entry["command"]; !ok {
			fail([]string{"agent_clis", key}, "[agent_clis.%s] has no `command`", formatKey(key))
		} else if strings.TrimSpace(cli.Command) == "" {
			fail([]string{"agent_clis", key, "command"}, "[agent_clis.%s] command is empty", formatKey(key))
		}
		if _, ok := entry["name"]; !ok {
			// tt requires name; tthost accepts the table key instead.
			cli.Name = key
		}
		if cli.Env == nil {
			cli.Env = map[string]string{}
		}
		cli.extra = unknownKeys(entry, knownCLI)
		c.AgentCLIs[key] = cli
	}

	c.DefaultCLI = normalizeLegacyCLI(c.DefaultCLI)
	c.ConductorCLI = normalizeLegacyCLI(c.ConductorCLI)

	for _, p := range c.problems() {
		fail(p.key, "%s", p.msg)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

type problem struct {
	key []string
	msg string
}

// problems lists values outside what tt accepts, and tthost settings
// outside what tthost can work with.
func (c *Config) problems() []problem {
	var ps []problem
	intRange := func(key []string, v, lo, hi int64, unit string) {
		if v < lo || v > hi {
			ps = append(ps, problem{key, fmt.Sprintf("%s = %d is out of range: it must be from %d to %d%s",
				dottedKey(key), v, lo, hi, unit)})
		}
	}
	intRange([]string{"max_agents"}, int64(c.MaxAgents), 0, 1<<31-1, "")
	intRange([]string{"redis", "port"}, int64(c.Redis.Port), 0, 65535, "")
	intRange([]string{"agent", "idle_timeout_secs"}, c.Agent.IdleTimeoutSecs, 0, 1<<53, " seconds (0 disables the idle timeout)")
	intRange([]string{"tthost", "safety_poll_secs"}, int64(c.TTHost.SafetyPollSecs), 1, 3600, " seconds")
	intRange([]string{"tthost", "heartbeat_secs"}, int64(c.TTHost.HeartbeatSecs), 1, 3600, " seconds")
	intRange([]string{"tthost", "stop_grace_secs"}, int64(c.TTHost.StopGraceSecs), 0, 600, " seconds")
	intRange([]string{"tthost", "reattach_window_secs"}, int64(c.TTHost.ReattachWindowSecs), 0, 86400, " seconds (0 makes plugins stop with their host)")
	intRange([]string{"tthost", "redis_outage_secs"}, int64(c.TTHost.RedisOutageSecs), 1, 86400, " seconds")
	intRange([]string{"tthost", "max_turn_messages"}, int64(c.TTHost.MaxTurnMessages), 1, 100000, "")
	intRange([]string{"tthost", "max_turn_bytes"}, int64(c.TTHost.MaxTurnBytes), 1024, MaxTurnBytesLimit, " bytes")
	intRange([]string{"tthost", "turn_poll_ms"}, int64(c.TTHost.TurnPollMillis), 10, 60000, " milliseconds")
	switch c.TTHost.RedisServer {
	case RedisServerAuto, RedisServerReal, RedisServerEmbedded:
	default:
		ps = append(ps, problem{[]string{"tthost", "redis_server"},
			fmt.Sprintf("tthost.redis_server = %q is not one of %q, %q or %q",
				c.TTHost.RedisServer, RedisServerAuto, RedisServerReal, RedisServerEmbedded)})
	}
	switch c.TTHost.Notifications {
	case NotificationsAuto, NotificationsOff:
	default:
		ps = append(ps, problem{[]string{"tthost", "notifications"},
			fmt.Sprintf("tthost.notifications = %q is not %q (use keyspace notifications, enabling them when permitted) or %q (never; poll)",
				c.TTHost.Notifications, NotificationsAuto, NotificationsOff)})
	}
	return ps
}

// Known keys per table; anything else is kept in an extra map.
var (
	knownTop = []string{"name", "default_cli", "conductor_cli", "max_agents", "use_central_redis",
		"use_streams", "redis", "townhall", "agent", "agent_clis", "tthost"}
	knownRedis = []string{"url", "use_socket", "socket_path", "host", "port", "persist", "aof_path",
		"password", "tls_enabled", "tls_cert", "tls_key", "tls_ca_cert", "bind"}
	knownAgent  = []string{"idle_timeout_secs", "persistent"}
	knownCLI    = []string{"name", "command", "workdir", "env", "backend", "options"}
	knownTTHost = []string{"plugin_dir", "safety_poll_secs", "heartbeat_secs", "stop_grace_secs", "reattach_window_secs", "redis_outage_secs",
		"max_turn_messages", "max_turn_bytes", "turn_poll_ms", "redis_server", "notifications", "backends"}
)

func table(raw map[string]any, key string) map[string]any {
	m, _ := raw[key].(map[string]any)
	return m
}

func unknownKeys(m map[string]any, known []string) map[string]any {
	var out map[string]any
	for k, v := range m {
		if !slices.Contains(known, k) {
			if out == nil {
				out = map[string]any{}
			}
			out[k] = v
		}
	}
	return out
}

// mismatch matches go-toml's type errors, whose Go type names mean nothing
// to someone editing the file.
var mismatch = regexp.MustCompile(`^cannot decode TOML (\w[\w ]*?) into .* of type (\S+)$`)

// decodeError turns a go-toml error into "FILE:LINE:COL: message".
func decodeError(file string, err error) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := mismatch.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("%s must be %s, not a TOML %s", dottedKey(de.Key()), tomlKind(m[2]), m[1])
	} else if len(de.Key()) > 0 {
		msg = dottedKey(de.Key()) + ": " + msg
	}
	return &Error{File: file, Line: line, Column: col, Msg: msg}
}

// tomlKind names the TOML kind that decodes into a Go type.
func tomlKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "config."):
		return "a table"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return goType
}

// dottedKey spells a key path as it would be written in TOML.
func dottedKey(key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = formatKey(k)
	}
	if len(parts) == 0 {
		return "(document)"
	}
	return strings.Join(parts, ".")
}

// keyPosition finds where key is defined in doc: a key-value's key or a
// table header. It returns 0, 0 when the key is not written there.
func keyPosition(doc []byte, key []string) (line, col int) {
	var p unstable.Parser
	p.Reset(doc)
	var current []string
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.ArrayTable && e.Kind != unstable.KeyValue {
			continue
		}
		var parts []string
		var first unstable.Range
		it := e.Key()
		for it.Next() {
			n := it.Node()
			if len(parts) == 0 {
				first = n.Raw
			}
			parts = append(parts, string(n.Data))
		}
		full := parts
		if e.Kind == unstable.KeyValue {
			full = append(slices.Clone(current), parts...)
		} else {
			current = parts
		}
		if slices.Equal(full, key) {
			s := p.Shape(first)
			return s.Start.Line, s.Start.Column
		}
	}
	return 0, 0
}
