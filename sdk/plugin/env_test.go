package plugin_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

func TestChildEnvIsThePluginsWithoutInternalsPlusExtra(t *testing.T) {
	t.Setenv("TTHOST_BACKEND_PLUGIN", "cookie")
	t.Setenv("PLUGIN_PROTOCOL_VERSIONS", "1")
	t.Setenv("TTHOST_PLUGIN_LOG_LEVEL", "debug")
	t.Setenv("CHILDENV_KEPT", "kept")
	t.Setenv("CHILDENV_OVERRIDDEN", "plugin")
	env, err := plugin.ChildEnv(map[string]string{
		"TINYTOWN_AGENT_ID":   "a1",
		"CHILDENV_OVERRIDDEN": "session",
		"PATH":                "/tools:" + os.Getenv("PATH"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); sdk.IsInternalEnv(name) {
			t.Errorf("the child gets the internal variable %s", kv)
		}
	}
	if got := lookup(env, "CHILDENV_KEPT"); got != "kept" {
		t.Errorf("CHILDENV_KEPT = %q, want the plugin's value", got)
	}
	if got := lookup(env, "CHILDENV_OVERRIDDEN"); got != "session" {
		t.Errorf("CHILDENV_OVERRIDDEN = %q, want the session's value to win", got)
	}
	if got := lookup(env, "TINYTOWN_AGENT_ID"); got != "a1" {
		t.Errorf("TINYTOWN_AGENT_ID = %q, want a1", got)
	}
	if got := lookup(env, "PATH"); !strings.HasPrefix(got, "/tools:") {
		t.Errorf("PATH = %q, want the session's, which puts /tools first", got)
	}
}

func TestChildEnvRefusesWhatExecCannotPass(t *testing.T) {
	cases := []struct {
		name  string
		extra map[string]string
	}{
		{"an empty name", map[string]string{"": "x"}},
		{"a name with =", map[string]string{"A=B": "c"}},
		{"a name with NUL", map[string]string{"A\x00": "c"}},
		{"a value with NUL", map[string]string{"A": "b\x00c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := plugin.ChildEnv(c.extra); !errors.Is(err, sdk.ErrInvalidConfig) {
				t.Errorf("ChildEnv(%q) error %v, want ErrInvalidConfig", c.extra, err)
			}
		})
	}
}

// TestProtocolDocListsEveryStrippedVariable keeps docs/protocol.md's
// section on the CLI's environment in step with the code.

func lookup(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			v = val // the last wins, as in os/exec
		}
	}
	return v
}
