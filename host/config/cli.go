package config

import (
	"maps"
	"slices"
	"strings"
)

// legacyCLIValues are full command lines older tt versions wrote into
// default_cli and conductor_cli; Load turns them back into preset names,
// as tt does.
var legacyCLIValues = map[string]string{
	"claude --print --dangerously-skip-permissions": "claude",
	"auggie --print": "auggie",
	"codex --dangerously-bypass-approvals-and-sandbox":      "codex",
	"codex exec --dangerously-bypass-approvals-and-sandbox": "codex",
	presets["codex-mini"]:                                   "codex-mini",
	"aider --yes --no-auto-commits --message":               "aider",
}

// normalizeLegacyCLI returns the preset name for a legacy command line, or
// v unchanged.
func normalizeLegacyCLI(v string) string {
	if name, ok := legacyCLIValues[strings.TrimSpace(v)]; ok {
		return name
	}
	return v
}

// ResolveCLIName turns an agent's CLI reference (its `cli` field, or
// default_cli) into a CLI name, exactly as tt's agent-loop does: blank means
// "claude"; a key of [agent_clis] is itself; a reference equal to an entry's
// command is that entry; otherwise the alias inferred from the first word,
// if it is a key; otherwise the trimmed reference.
func (c *Config) ResolveCLIName(ref string) string {
	r := strings.TrimSpace(ref)
	if r == "" {
		return "claude"
	}
	if _, ok := c.AgentCLIs[r]; ok {
		return r
	}
	// Sorted so that two entries with the same command resolve the same way
	// every time (tt's map order is arbitrary).
	for _, name := range slices.Sorted(maps.Keys(c.AgentCLIs)) {
		if strings.TrimSpace(c.AgentCLIs[name].Command) == r {
			return name
		}
	}
	if alias := inferCLIAlias(r); alias != "" {
		if _, ok := c.AgentCLIs[alias]; ok {
			return alias
		}
	}
	return r
}

// ResolveCLICommand returns the command line for a CLI reference: the
// command of the resolved [agent_clis] entry, or else the trimmed reference
// itself, so an arbitrary shell command works as a CLI.
func (c *Config) ResolveCLICommand(ref string) string {
	if cli, ok := c.AgentCLIs[c.ResolveCLIName(ref)]; ok {
		return cli.Command
	}
	return strings.TrimSpace(ref)
}

// inferCLIAlias maps a command line's first word to a preset name, or "".
func inferCLIAlias(r string) string {
	fields := strings.Fields(r)
	if len(fields) == 0 {
		return ""
	}
	switch fields[0] {
	case "claude", "auggie", "aider", "gemini", "cursor":
		return fields[0]
	case "gh":
		if strings.HasPrefix(r, "gh copilot") {
			return "copilot"
		}
	case "codex":
		if strings.Contains(r, "gpt-5.4-mini") {
			return "codex-mini"
		}
		return "codex"
	}
	return ""
}
