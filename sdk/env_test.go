package sdk_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

// pluginEnv is what a plugin process launched by the host holds, the
// internal variables mixed with what the CLI needs.
var pluginEnv = []string{
	"PATH=/usr/bin:/bin",
	"TTHOST_BACKEND_PLUGIN=6b1f1c3e-tthost-backend-d3c0de5a9e74",
	"PLUGIN_MIN_PORT=10000",
	"PLUGIN_MAX_PORT=25000",
	"PLUGIN_PROTOCOL_VERSIONS=1",
	"PLUGIN_CLIENT_CERT=-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	"PLUGIN_UNIX_SOCKET_DIR=/tmp/tthost-plugin-1",
	"PLUGIN_UNIX_SOCKET_GROUP=staff",
	"PLUGIN_MULTIPLEX_GRPC=true",
	"TTHOST_PLUGIN_HOST_PID=4242",
	"TTHOST_PLUGIN_LOG_LEVEL=info",
	"TTHOST_PLUGIN_DEBUG=1",
	"TTHOST_REATTACH_PLUGINS={}",
	"TTHOST_PLUGIN_CLI=codex",
	"TTHOST_PLUGIN_INSTANCE=abc",
	"TTHOST_PLUGIN_DIR=/home/me/plugins",
	"HOME=/home/me",
}

func TestCleanEnv(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"an empty environment stays empty", nil, []string{}},
		{"ordinary variables are kept in order", []string{"B=2", "A=1", "EMPTY="}, []string{"B=2", "A=1", "EMPTY="}},
		{"the handshake cookie is stripped", []string{"TTHOST_BACKEND_PLUGIN=x", "A=1"}, []string{"A=1"}},
		{"every go-plugin variable is stripped, known or not", []string{"PLUGIN_MIN_PORT=1", "PLUGIN_FUTURE=1", "A=1"}, []string{"A=1"}},
		{"a name that only contains PLUGIN_ is kept", []string{"MY_PLUGIN_DIR=/p", "XPLUGIN_=1"}, []string{"MY_PLUGIN_DIR=/p", "XPLUGIN_=1"}},
		{"a value that names an internal variable is kept", []string{"A=TTHOST_BACKEND_PLUGIN=x"}, []string{"A=TTHOST_BACKEND_PLUGIN=x"}},
		{"a malformed entry without = is judged by its whole text", []string{"PLUGIN_X", "JUNK"}, []string{"JUNK"}},
		{"a plugin's environment keeps only what the CLI needs", pluginEnv, []string{
			"PATH=/usr/bin:/bin",
			"TTHOST_PLUGIN_INSTANCE=abc",
			"TTHOST_PLUGIN_DIR=/home/me/plugins",
			"HOME=/home/me",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.in)
			got := sdk.CleanEnv(c.in)
			if !slices.Equal(got, c.want) {
				t.Errorf("CleanEnv(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if !slices.Equal(in, c.in) {
				t.Errorf("CleanEnv changed its argument: %q", c.in)
			}
		})
	}
}

func TestIsInternalEnv(t *testing.T) {
	cases := []struct {
		name     string
		internal bool
	}{
		{"TTHOST_BACKEND_PLUGIN", true},
		{"TTHOST_PLUGIN_HOST_PID", true},
		{sdk.LogLevelEnv, true},
		{sdk.DebugEnv, true},
		{sdk.ReattachEnv, true},
		{sdk.PluginCLIEnv, true},
		{"PLUGIN_CLIENT_CERT", true},
		{"PLUGIN_UNIX_SOCKET_GROUP", true},
		// For the CLI: the host finds a dead plugin's CLIs by the instance
		// token, a backend its own by a ProcessTag, the tests theirs by a
		// marker; TINYTOWN_* and PATH are what the agent's commands need.
		{"TTHOST_PLUGIN_INSTANCE", false},
		{plugin.ProcessTagEnv, false},
		{"TTHOST_CONFORMANCE_RUN", false},
		{"TTHOST_TEST_MARKER", false},
		{"TTHOST_PLUGIN_DIR", false},
		{"TINYTOWN_AGENT_ID", false},
		{"TINYTOWN_AGENT_NAME", false},
		{"PATH", false},
		{"plugin_min_port", false},
	}
	for _, c := range cases {
		if got := sdk.IsInternalEnv(c.name); got != c.internal {
			t.Errorf("IsInternalEnv(%q) = %v, want %v", c.name, got, c.internal)
		}
	}
}

func TestProtocolDocListsEveryStrippedVariable(t *testing.T) {
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## The CLI's environment")
	if !ok {
		t.Fatal(`docs/protocol.md has no section "The CLI's environment"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	names := append(sdk.InternalEnv(), sdk.GoPluginEnvPrefix,
		"PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT",
		"PLUGIN_MULTIPLEX_GRPC", "PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP")
	for _, name := range names {
		if !strings.Contains(section, "`"+name) {
			t.Errorf("docs/protocol.md's section on the CLI's environment does not list %s", name)
		}
	}
}

func lookup(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			v = val // the last wins, as in os/exec
		}
	}
	return v
}
