package config

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// tthostComment heads the [tthost] section so a reader of a shared file
// knows why it is there.
const tthostComment = "# Settings of tthost, the Go host that runs this town's agents; tt ignores this section."

// Save writes the config to path in tt's layout, atomically: a temporary
// file in the same directory is renamed over path, so a reader (tt or
// another tthost) sees the old file or the new one, never half of one.
func (c *Config) Save(path string) error {
	data := c.Encode()
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once the rename succeeded
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// Encode returns the file Save writes. The output is deterministic: known
// keys in tt's order, [agent_clis.*] and unknown keys sorted.
func (c *Config) Encode() []byte {
	var w tomlWriter
	w.kv("name", c.Name)
	w.kv("default_cli", c.DefaultCLI)
	if c.ConductorCLI != "" {
		w.kv("conductor_cli", c.ConductorCLI)
	}
	w.kv("max_agents", int64(c.MaxAgents))
	w.kv("use_central_redis", c.UseCentralRedis)
	w.kv("use_streams", c.UseStreams)
	w.scalars(c.extra, nil)

	r := c.Redis
	w.header("redis")
	if r.URL != "" {
		w.kv("url", r.URL)
	}
	w.kv("use_socket", r.UseSocket)
	w.kv("socket_path", r.SocketPath)
	w.kv("host", r.Host)
	w.kv("port", int64(r.Port))
	w.kv("persist", r.Persist)
	w.kv("aof_path", r.AOFPath)
	w.optional("password", r.Password)
	w.kv("tls_enabled", r.TLSEnabled)
	w.optional("tls_cert", r.TLSCert)
	w.optional("tls_key", r.TLSKey)
	w.optional("tls_ca_cert", r.TLSCACert)
	w.kv("bind", r.Bind)
	w.scalars(r.extra, []string{"redis"})
	w.extraTables([]string{"redis"}, r.extra)

	if c.Townhall != nil {
		w.header("townhall")
		w.table([]string{"townhall"}, c.Townhall)
	}

	w.header("agent")
	w.kv("idle_timeout_secs", c.Agent.IdleTimeoutSecs)
	w.kv("persistent", c.Agent.Persistent)
	w.scalars(c.Agent.extra, []string{"agent"})
	w.extraTables([]string{"agent"}, c.Agent.extra)

	for _, key := range slices.Sorted(maps.Keys(c.AgentCLIs)) {
		cli := c.AgentCLIs[key]
		path := []string{"agent_clis", key}
		w.header(path...)
		w.kv("name", cli.Name)
		w.kv("command", cli.Command)
		w.optional("workdir", cli.Workdir)
		w.optional("backend", cli.Backend)
		w.scalars(cli.extra, path)
		// tt always writes the env table, even empty.
		w.subHeader(append(path, "env")...)
		for _, k := range slices.Sorted(maps.Keys(cli.Env)) {
			w.kv(k, cli.Env[k])
		}
		if len(cli.Options) > 0 {
			w.subHeader(append(path, "options")...)
			for _, k := range slices.Sorted(maps.Keys(cli.Options)) {
				w.kv(k, cli.Options[k])
			}
		}
		w.extraTables(path, cli.extra)
	}

	w.extraTables(nil, c.extra)

	w.b.WriteString("\n" + tthostComment + "\n")
	w.subHeader("tthost")
	t := c.TTHost
	w.kv("plugin_dir", t.PluginDir)
	w.kv("safety_poll_secs", int64(t.SafetyPollSecs))
	w.kv("heartbeat_secs", int64(t.HeartbeatSecs))
	w.kv("stop_grace_secs", int64(t.StopGraceSecs))
	w.kv("reattach_window_secs", int64(t.ReattachWindowSecs))
	w.kv("redis_outage_secs", int64(t.RedisOutageSecs))
	w.kv("max_turn_messages", int64(t.MaxTurnMessages))
	w.kv("max_turn_bytes", int64(t.MaxTurnBytes))
	w.kv("turn_poll_ms", int64(t.TurnPollMillis))
	w.kv("redis_server", t.RedisServer)
	w.kv("notifications", t.Notifications)
	w.scalars(t.extra, []string{"tthost"})
	for _, name := range slices.Sorted(maps.Keys(t.Backends)) {
		w.header("tthost", "backends", name)
		opts := t.Backends[name]
		for _, k := range slices.Sorted(maps.Keys(opts)) {
			w.kv(k, opts[k])
		}
	}
	w.extraTables([]string{"tthost"}, t.extra)
	return []byte(w.b.String())
}

// keyOrder is tt's order for the [townhall] keys it writes; other keys
// follow, sorted.
var keyOrder = map[string][]string{
	"townhall":      {"bind", "rest_port", "request_timeout_ms", "auth", "tls", "mtls"},
	"townhall.auth": {"mode", "api_key_hash", "api_key_scopes", "issuer", "audience", "jwks_url", "required_scopes", "clock_skew_seconds"},
	"townhall.tls":  {"enabled", "cert_file", "key_file"},
	"townhall.mtls": {"enabled", "required", "ca_file"},
}

type tomlWriter struct{ b strings.Builder }

// header starts a top-level section, after a blank line.
func (w *tomlWriter) header(path ...string) {
	w.b.WriteString("\n")
	w.subHeader(path...)
}

// subHeader starts a table with no blank line, as tt's pretty printer
// does for nested tables.
func (w *tomlWriter) subHeader(path ...string) {
	w.b.WriteString("[" + dottedKey(path) + "]\n")
}

func (w *tomlWriter) kv(key string, v any) {
	w.b.WriteString(formatKey(key) + " = ")
	writeValue(&w.b, v)
	w.b.WriteString("\n")
}

// optional writes a string key only when it is set, as tt omits None.
func (w *tomlWriter) optional(key, v string) {
	if v != "" {
		w.kv(key, v)
	}
}

// scalars writes m's non-table values (sorted); they must precede the
// sub-tables of the current table.
func (w *tomlWriter) scalars(m map[string]any, path []string) {
	for _, k := range orderedKeys(m, path) {
		if _, isTable := m[k].(map[string]any); !isTable {
			w.kv(k, m[k])
		}
	}
}

// extraTables writes m's table values as sub-tables of path.
func (w *tomlWriter) extraTables(path []string, m map[string]any) {
	for _, k := range orderedKeys(m, path) {
		if sub, isTable := m[k].(map[string]any); isTable {
			p := append(slices.Clone(path), k)
			if len(path) == 0 {
				w.header(p...)
			} else {
				w.subHeader(p...)
			}
			w.table(p, sub)
		}
	}
}

// table writes the body of a table whose header is already written.
func (w *tomlWriter) table(path []string, m map[string]any) {
	w.scalars(m, path)
	for _, k := range orderedKeys(m, path) {
		if sub, isTable := m[k].(map[string]any); isTable {
			p := append(slices.Clone(path), k)
			w.subHeader(p...)
			w.table(p, sub)
		}
	}
}

func orderedKeys(m map[string]any, path []string) []string {
	pref := keyOrder[strings.Join(path, ".")]
	var keys []string
	for _, k := range pref {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(pref, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// formatKey writes a key bare when TOML allows it, else quoted.
func formatKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return quote(k)
		}
	}
	return k
}

// quote writes a TOML basic string. Double quotes, as tt writes.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeValue writes any value go-toml decodes into an interface{}.
func writeValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case string:
		b.WriteString(quote(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float64:
		b.WriteString(formatFloat(v))
	case time.Time:
		b.WriteString(v.Format(time.RFC3339Nano))
	case toml.LocalDate:
		b.WriteString(v.String())
	case toml.LocalTime:
		b.WriteString(v.String())
	case toml.LocalDateTime:
		b.WriteString(v.String())
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValue(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		// Only inside arrays (tables are written as [headers]).
		b.WriteByte('{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" " + formatKey(k) + " = ")
			writeValue(b, v[k])
		}
		if len(v) > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('}')
	default:
		b.WriteString(quote(fmt.Sprint(v)))
	}
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}
