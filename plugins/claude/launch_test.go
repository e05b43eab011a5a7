package main

import (
	"slices"
	"strings"
	"testing"
)

func TestDeriveLaunch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		command string
		bin     string
		env     []string
		keep    []string
		model   string
		ignored []string
	}{
		{command: "claude --print --dangerously-skip-permissions", bin: "claude"},
		{command: "/opt/bin/claude -p 'do it' --output-format json --verbose", bin: "/opt/bin/claude"},
		{command: "ANTHROPIC_MODEL=x claude --model opus --allowedTools 'Bash Read' --max-turns=5 --strict-mcp-config -p hello",
			bin: "claude", env: []string{"ANTHROPIC_MODEL=x"}, model: "opus",
			keep: []string{"--allowedTools=Bash Read", "--max-turns=5", "--strict-mcp-config"}},
		{command: "claude --resume abc --session-id 123 --permission-mode plan -c --frobnicate", bin: "claude", ignored: []string{"--frobnicate"}},
		{command: "claude -p -- --model not-a-flag", bin: "claude"},
		{command: "claude --model", bin: "claude"},
	}
	for _, tt := range tests {
		spec, err := deriveLaunch(tt.command)
		if err != nil {
			t.Fatalf("deriveLaunch(%q): %v", tt.command, err)
		}
		if spec.bin != tt.bin || !slices.Equal(spec.env, tt.env) || !slices.Equal(spec.keep, tt.keep) ||
			spec.model != tt.model || !slices.Equal(spec.ignored, tt.ignored) {
			t.Errorf("deriveLaunch(%q) = %+v", tt.command, spec)
		}
	}
}

func TestDeriveLaunchOtherCommand(t *testing.T) {
	t.Parallel()
	spec, err := deriveLaunch("/path/to/fake --flag")
	if err != nil || spec.bin != "" || spec.shell != "/path/to/fake --flag" {
		t.Fatalf("deriveLaunch = %+v, %v", spec, err)
	}
	argv := spec.argv("--session-id=abc")
	if argv[0] != "sh" || argv[2] != `/path/to/fake --flag "$@"` || argv[len(argv)-1] != "--session-id=abc" {
		t.Errorf("argv %q", argv)
	}
	if _, err := deriveLaunch("claude 'unterminated"); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}

func TestArgvStreamingFlags(t *testing.T) {
	t.Parallel()
	spec, _ := deriveLaunch("claude --print --append-system-prompt 'be brief'")
	got := strings.Join(spec.argv("--resume=-x"), " ")
	want := "claude -p --input-format stream-json --output-format stream-json --verbose --include-partial-messages --replay-user-messages --append-system-prompt=be brief --resume=-x"
	if got != want {
		t.Errorf("argv\n got %s\nwant %s", got, want)
	}
}

func FuzzDeriveLaunch(f *testing.F) {
	f.Add("claude --print --dangerously-skip-permissions")
	f.Add("A=1 claude --model x -- y")
	f.Add(`"claude" '--model' "--max-turns=3" \`)
	f.Fuzz(func(t *testing.T, command string) {
		spec, err := deriveLaunch(command)
		if err == nil {
			_ = spec.argv("--session-id=x")
		}
	})
}
