package main

import "fmt"

// claude-code-acp's quirks (docs/compatibility.md, "ACP agents").
//
// claude-code-acp (Zed's ACP adapter for Claude Code) runs Claude Code
// through the Claude Agent SDK, and passes it
// --allow-dangerously-skip-permissions (so that its bypassPermissions mode
// can be chosen) unless it runs as root with IS_SANDBOX empty. Claude Code
// refuses that flag as root unless IS_SANDBOX is exactly "1", and exits:
// session/new then fails with "Query closed before response received".
// So a root plugin whose environment has IS_SANDBOX=yes (as some
// containers set it) could not start claude-code-acp at all. As root the
// backend sets IS_SANDBOX=1, as the Claude backend does for claude, unless
// the session's config sets IS_SANDBOX itself, and says so once per
// session. Claude Code's tools still ask before they run
// (session/request_permission, answered by the option permission):
// claude-code-acp starts every session in its default permission mode.

// claudeACPRoot decides IS_SANDBOX for claude-code-acp run with effective
// user id euid and the session's env: set reports whether the backend
// adds IS_SANDBOX=1; note is the root_sandbox notice to emit, empty for
// none.
func claudeACPRoot(euid int, env map[string]string) (set bool, note string) {
	if euid != 0 {
		return false, ""
	}
	if v, ok := env["IS_SANDBOX"]; ok {
		if v == "" || v == "1" {
			return false, ""
		}
		return false, fmt.Sprintf("tthost runs as root and the config sets IS_SANDBOX=%q for claude-code-acp: "+
			"claude-code-acp then starts Claude Code with --allow-dangerously-skip-permissions, which Claude Code refuses as root "+
			"unless IS_SANDBOX is 1, and the session cannot start; set IS_SANDBOX to 1 or remove it from the config", v)
	}
	return true, "tthost runs as root: IS_SANDBOX=1 was set for claude-code-acp, whose Claude Code refuses " +
		"--allow-dangerously-skip-permissions as root otherwise; " +
		"Claude Code's tools still ask before they run (answered by the option permission)"
}
