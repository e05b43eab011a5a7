package sdk

import (
	"slices"
	"strings"

	"github.com/tthost/tthost/sdk/internal/wire"
)

// A plugin process runs with variables that are meant for it alone: the
// go-plugin handshake (the cookie, the TLS certificate, the socket
// directory, the protocol versions) and tthost's settings for the plugin.
// A CLI that inherits them believes it is a plugin: a `tthost` run inside
// a turn would take the cookie for a handshake and keep its stdout for
// one. ChildEnv is the one way to build a child's environment without
// them; docs/protocol.md ("The CLI's environment") lists them with why.

// GoPluginEnvPrefix is go-plugin's namespace: every variable it sets for a
// plugin starts with it (PLUGIN_MIN_PORT, PLUGIN_MAX_PORT,
// PLUGIN_PROTOCOL_VERSIONS, PLUGIN_CLIENT_CERT, PLUGIN_MULTIPLEX_GRPC,
// PLUGIN_UNIX_SOCKET_DIR, PLUGIN_UNIX_SOCKET_GROUP in go-plugin 1.8), so
// stripping the prefix also strips what a later go-plugin adds.
const GoPluginEnvPrefix = "PLUGIN_"

// PluginCLIEnv tells a plugin process that the host runs once per CLI
// (the Codex backend) which CLI it serves.
const PluginCLIEnv = "TTHOST_PLUGIN_CLI"

// internalEnv are the other variables meant for the plugin process only.
// What the host sets for the CLI's sake is not here and reaches it:
// TTHOST_PLUGIN_INSTANCE (the host kills what carries it after a plugin
// crash), a ProcessTag, the conformance suite's and sdktest's markers,
// and the session's Env.
var internalEnv = []string{
	wire.Handshake.MagicCookieKey, // TTHOST_BACKEND_PLUGIN: go-plugin's handshake cookie
	wire.HostPIDEnv,               // TTHOST_PLUGIN_HOST_PID: arms the stdout guard in the plugin only
	LogLevelEnv,                   // TTHOST_PLUGIN_LOG_LEVEL: the plugin's log level
	DebugEnv,                      // TTHOST_PLUGIN_DEBUG: serve in debug mode when started by hand
	ReattachEnv,                   // TTHOST_REATTACH_PLUGINS: debug plugins the outer host attached to
	PluginCLIEnv,                  // TTHOST_PLUGIN_CLI: the CLI a per-CLI plugin process serves
	ReattachWindowEnv,             // TTHOST_PLUGIN_REATTACH_WINDOW_MS: how long to wait for a new host
	DetachedLogEnv,                // TTHOST_PLUGIN_DETACHED_LOG: where to log while no host reads stderr
}

// InternalEnv lists the variables that CleanEnv strips by name, beside
// every variable starting with GoPluginEnvPrefix.
func InternalEnv() []string { return slices.Clone(internalEnv) }

// IsInternalEnv reports whether the variable name is meant for the plugin
// process only: one of InternalEnv, or go-plugin's (GoPluginEnvPrefix).
func IsInternalEnv(name string) bool {
	return strings.HasPrefix(name, GoPluginEnvPrefix) || slices.Contains(internalEnv, name)
}

// CleanEnv returns env ("KEY=VALUE" entries) without the plugin's internal
// variables (IsInternalEnv), in order. env is not modified.
func CleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !IsInternalEnv(name) {
			out = append(out, kv)
		}
	}
	return out
}

// ReattachWindowEnv carries the reattach window in milliseconds: how long
// a plugin whose host is gone (the host process died, or every event
// stream of a host that was attached broke) keeps its sessions and their
// running turns for a new host to reattach. Past the window the plugin
// closes its sessions, kills their processes and exits. Unset or 0: the
// plugin stops as soon as its host is gone, as before reattach existed.
const ReattachWindowEnv = "TTHOST_PLUGIN_REATTACH_WINDOW_MS"

// DetachedLogEnv names a file the plugin appends its logs to while it is
// detached: its stderr was a pipe to the host that died, so nobody reads
// it any more. Unset: logs written while detached are lost.
const DetachedLogEnv = "TTHOST_PLUGIN_DETACHED_LOG"

// LogLevelEnv names the environment variable that sets the plugin's log
// level (trace, debug, info, warn, error; default info). The host sets it
// to its own level so that a plugin does not produce logs nobody keeps.
const LogLevelEnv = "TTHOST_PLUGIN_LOG_LEVEL"

// DebugEnv, set to 1 or true in the environment of a plugin started by
// hand without arguments, serves it in debug mode as --debug does. A host
// never starts a plugin in debug mode, whatever its environment holds.
const DebugEnv = "TTHOST_PLUGIN_DEBUG"

// ReattachEnv names the host's environment variable that lists plugins
// serving in debug mode, as a JSON object from backend name to where the
// plugin listens:
//
//	{"mybackend":{"protocol":"grpc","protocol_version":1,"pid":4242,
//	  "addr":{"network":"unix","string":"/tmp/tthost-plugin-123/plugin456"}}}
//
// A plugin in debug mode prints its entry; merge the objects by hand to
// debug several plugins at once.
const ReattachEnv = "TTHOST_REATTACH_PLUGINS"
