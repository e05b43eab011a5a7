package config

import "testing"

func TestResolveCLI(t *testing.T) {
	withPresets := New("t")
	custom := New("t")
	custom.AgentCLIs["fast"] = AgentCLI{Name: "fast", Command: "  claude --print --model haiku  "}
	onlyCodex := &Config{AgentCLIs: map[string]AgentCLI{
		"codex": {Name: "codex", Command: "codex exec --dangerously-bypass-approvals-and-sandbox"},
	}}
	none := &Config{}

	cases := []struct {
		name     string
		cfg      *Config
		ref      string
		wantName string
		wantCmd  string
	}{
		{"empty means claude", withPresets, "", "claude", presets["claude"]},
		{"blank means claude", withPresets, "  \t", "claude", presets["claude"]},
		{"a key is itself", withPresets, "auggie", "auggie", "auggie --print"},
		{"a key with spaces around it", withPresets, " gemini ", "gemini", "gemini"},
		{"a command equal to an entry's", withPresets, "aider --yes --no-auto-commits --message", "aider", presets["aider"]},
		{"a command equal to an entry's trimmed command", custom, "claude --print --model haiku", "fast", "  claude --print --model haiku  "},
		{"codex by its first word", withPresets, "codex exec --full-auto", "codex", presets["codex"]},
		{"codex-mini by gpt-5.4-mini", withPresets, "codex exec -m gpt-5.4-mini", "codex-mini", presets["codex-mini"]},
		{"codex-mini alias needs a codex-mini entry", onlyCodex, "codex -m gpt-5.4-mini", "codex -m gpt-5.4-mini", "codex -m gpt-5.4-mini"},
		{"claude by its first word", withPresets, "claude --model opus", "claude", presets["claude"]},
		{"gh copilot is copilot", withPresets, "gh copilot suggest", "copilot", "gh copilot"},
		{"gh alone is not copilot", withPresets, "gh pr list", "gh pr list", "gh pr list"},
		{"cursor by its first word", withPresets, "cursor agent", "cursor", "cursor"},
		{"an alias missing from agent_clis is raw", none, "claude --print", "claude --print", "claude --print"},
		{"a raw command", withPresets, "  ./my-agent.sh --go ", "./my-agent.sh --go", "./my-agent.sh --go"},
		{"empty with no entries", none, "", "claude", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.ResolveCLIName(tc.ref); got != tc.wantName {
				t.Errorf("ResolveCLIName(%q) = %q, want %q", tc.ref, got, tc.wantName)
			}
			if got := tc.cfg.ResolveCLICommand(tc.ref); got != tc.wantCmd {
				t.Errorf("ResolveCLICommand(%q) = %q, want %q", tc.ref, got, tc.wantCmd)
			}
		})
	}
}

func TestResolveCLINamePrefersTheSortedFirstOfEqualCommands(t *testing.T) {
	c := &Config{AgentCLIs: map[string]AgentCLI{
		"zeta":  {Command: "run-agent"},
		"alpha": {Command: "run-agent"},
		"mid":   {Command: "run-agent"},
	}}
	for range 20 {
		if got := c.ResolveCLIName("run-agent"); got != "alpha" {
			t.Fatalf("ResolveCLIName = %q, want alpha every time", got)
		}
	}
}
