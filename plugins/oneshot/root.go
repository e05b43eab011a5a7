package main

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tthost/tthost/plugins/internal/shellwords"
)

// Claude Code refuses --dangerously-skip-permissions as root ("cannot be
// used with root/sudo privileges", exit 1) unless IS_SANDBOX=1, and
// Tinytown's preset for claude is `claude --print
// --dangerously-skip-permissions`: as root, the one-shot fallback for
// claude would fail every turn. The Claude backend sets IS_SANDBOX=1 in
// that case (docs/protocol.md, "The Claude backend"); so does this one, for
// a command that runs claude with that flag, unless the town's config sets
// IS_SANDBOX itself, and says so once per session.

// rootSandbox returns the environment for a one-shot CLI run as euid with
// command and the session's env, and the notice to give when IS_SANDBOX=1
// was added ("" when nothing was).
func rootSandbox(euid int, command string, env map[string]string) (map[string]string, string) {
	if euid != 0 {
		return env, ""
	}
	if _, ok := env["IS_SANDBOX"]; ok {
		return env, ""
	}
	_, words, err := shellwords.SplitCommand(command)
	// npm installs the native binary as bin/claude.exe, linked as claude.
	if err != nil || len(words) == 0 || strings.TrimSuffix(filepath.Base(words[0]), ".exe") != "claude" {
		return env, ""
	}
	if !slices.Contains(words[1:], "--dangerously-skip-permissions") {
		return env, ""
	}
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	out["IS_SANDBOX"] = "1"
	return out, "tthost runs as root: IS_SANDBOX=1 was set for claude, which refuses --dangerously-skip-permissions as root otherwise; " +
		"claude's tools run as root without asking (an IS_SANDBOX of the CLI's env in tinytown.toml is left as it is)"
}
