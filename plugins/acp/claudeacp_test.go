package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk"
)

// claude-code-acp as root: IS_SANDBOX=1 unless the config decides; a
// config value that keeps it from starting is said, not changed.
func TestClaudeACPRootSandbox(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		euid int
		env  map[string]string
		set  bool
		note string // a word the notice contains; "" for none
	}{
		{"not root", 1000, nil, false, ""},
		{"not root, IS_SANDBOX=yes", 1000, map[string]string{"IS_SANDBOX": "yes"}, false, ""},
		{"root", 0, nil, true, "IS_SANDBOX=1 was set"},
		{"root, other variables", 0, map[string]string{"HOME": "/h"}, true, "IS_SANDBOX=1 was set"},
		{"root, config 1", 0, map[string]string{"IS_SANDBOX": "1"}, false, ""},
		{"root, config empty", 0, map[string]string{"IS_SANDBOX": ""}, false, ""},
		{"root, config yes", 0, map[string]string{"IS_SANDBOX": "yes"}, false, `IS_SANDBOX="yes"`},
	} {
		set, note := claudeACPRoot(tc.euid, tc.env)
		if set != tc.set || (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) {
			t.Errorf("%s: claudeACPRoot = %v, %q; want %v and a notice with %q", tc.name, set, note, tc.set, tc.note)
		}
	}
}

// validate applies the decision to claude-code-acp only, with the
// plugin's real euid.
func TestClaudeACPSandboxOnlyForClaudeCodeACP(t *testing.T) {
	t.Parallel()
	root := os.Geteuid() == 0
	for command, want := range map[string]bool{"claude-code-acp": root, "gemini --acp": false, "other-agent": false} {
		st, err := validate(sdk.SessionConfig{CLIName: "x", Command: command, Workdir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(st.extraEnv, "IS_SANDBOX=1"); got != want || st.sandboxSet != want || (st.rootNote != "") != want {
			t.Errorf("%s: IS_SANDBOX=1 %v, sandboxSet %v, notice %q; want %v", command, got, st.sandboxSet, st.rootNote, want)
		}
	}
}
