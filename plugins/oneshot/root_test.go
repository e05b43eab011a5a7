package main

import (
	"maps"
	"strings"
	"testing"
)

// As root, Tinytown's claude preset gets IS_SANDBOX=1 (claude refuses its
// flag otherwise), and only it: another user, another command, a claude
// without the flag, or a town that set IS_SANDBOX itself are left alone.
func TestRootSandboxOnlyForClaudeSkippingPermissionsAsRoot(t *testing.T) {
	preset := "claude --print --dangerously-skip-permissions"
	for _, tc := range []struct {
		name    string
		euid    int
		command string
		env     map[string]string
		set     bool
	}{
		{"root running the preset", 0, preset, nil, true},
		{"root running the preset by path, after assignments", 0, "A=1 /opt/bin/claude -p --dangerously-skip-permissions", map[string]string{"K": "v"}, true},
		{"root running npm's native binary", 0, "/x/node_modules/@anthropic-ai/claude-code/bin/claude.exe --print --dangerously-skip-permissions", nil, true},
		{"another user", 1000, preset, nil, false},
		{"a claude that may ask", 0, "claude --print", nil, false},
		{"another CLI with the same flag", 0, "notclaude --dangerously-skip-permissions", nil, false},
		{"a town that decided", 0, preset, map[string]string{"IS_SANDBOX": ""}, false},
		{"a command that does not parse", 0, "claude 'unterminated", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.env)
			env, notice := rootSandbox(tc.euid, tc.command, tc.env)
			if got := env["IS_SANDBOX"] == "1"; got != tc.set || (notice != "") != tc.set {
				t.Fatalf("IS_SANDBOX set %v, notice %q; want set %v", got, notice, tc.set)
			}
			if tc.set && (!strings.Contains(notice, "root") || env["K"] != tc.env["K"]) {
				t.Errorf("notice %q, env %v", notice, env)
			}
			if !maps.Equal(tc.env, before) {
				t.Errorf("the session's env was changed in place: %v", tc.env)
			}
		})
	}
}
