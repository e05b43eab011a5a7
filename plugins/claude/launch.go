package main

import (
	"path/filepath"
	"strings"

	"github.com/tthost/tthost/plugins/internal/shellwords"
)

// launchSpec says how a session's claude is started.
type launchSpec struct {
	// bin is claude (the configured path), or "" for a command that is
	// not claude, run under sh -c with the backend's flags as its
	// arguments (a wrapper script, a test fake).
	bin string
	// shell is that other command.
	shell string
	// env holds NAME=value assignments written before claude.
	env []string
	// keep are the configured command's flags that still make sense for a
	// streaming session, with their values.
	keep []string
	// model is the configured --model, or "".
	model string
	// ignored lists flags of the configured command that were not passed
	// on, for a notice.
	ignored []string
}

// Flags of claude 2.1.330 that the backend keeps from the configured
// command, by whether they take a value. Everything else is dropped: -p
// and the prompt (the session feeds turns on stdin), the output and input
// formats, --verbose and the partial and replay flags (the backend's own),
// the permission flags (option permission_mode), and the session flags
// (--session-id, --resume, --continue: the backend's).
var (
	keptValueFlags = map[string]bool{
		"--model": true, "--fallback-model": true, "--allowedTools": true, "--allowed-tools": true,
		"--disallowedTools": true, "--disallowed-tools": true, "--append-system-prompt": true,
		"--system-prompt": true, "--mcp-config": true, "--add-dir": true, "--settings": true,
		"--max-turns": true, "--agents": true, "--effort": true, "--tools": true, "--setting-sources": true,
	}
	keptBoolFlags = map[string]bool{"--strict-mcp-config": true}
	// droppedValueFlags take a value that must be dropped with them.
	droppedValueFlags = map[string]bool{
		"--output-format": true, "--input-format": true, "--permission-mode": true, "--session-id": true,
		"--resume": true, "-r": true, "--permission-prompt-tool": true,
	}
	// droppedFlags, like droppedValueFlags, are the backend's own or
	// one-shot only; not reported.
	droppedFlags = map[string]bool{
		"-p": true, "--print": true, "--verbose": true, "--dangerously-skip-permissions": true,
		"--include-partial-messages": true, "--replay-user-messages": true, "-c": true, "--continue": true,
	}
)

// deriveLaunch turns the CLI's configured command (a one-shot one:
// Tinytown's preset is `claude --print --dangerously-skip-permissions`)
// into a streaming session's. A command whose first word (after NAME=value
// assignments) is not claude is run as given under sh -c.
func deriveLaunch(command string) (launchSpec, error) {
	env, words, err := shellwords.SplitCommand(command)
	if err != nil {
		return launchSpec{}, err
	}
	if len(words) == 0 || !isClaude(words[0]) {
		return launchSpec{shell: command}, nil
	}
	spec := launchSpec{bin: words[0], env: env}
	rest := words[1:]
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if w == "--" {
			break // the rest is the prompt
		}
		if !strings.HasPrefix(w, "-") {
			continue // a positional argument: the one-shot prompt
		}
		name, value, inline := strings.Cut(w, "=")
		takesValue := keptValueFlags[name] || droppedValueFlags[name]
		if takesValue && !inline {
			if i+1 >= len(rest) {
				break // a flag without its value
			}
			i++
			value = rest[i]
		}
		switch {
		case name == "--model":
			spec.model = value
		case keptValueFlags[name]:
			spec.keep = append(spec.keep, name+"="+value)
		case keptBoolFlags[name] && !inline:
			spec.keep = append(spec.keep, name)
		case droppedFlags[name] || droppedValueFlags[name]:
		default:
			spec.ignored = append(spec.ignored, w)
		}
	}
	return spec, nil
}

func isClaude(word string) bool {
	base := filepath.Base(word)
	return base == "claude" || base == "claude.exe"
}

// argv is the command line of a session's claude: the configured binary
// and kept flags, the streaming flags, then extra (permission, model and
// session flags). Ids are passed in = form, so that a value starting with
// a dash cannot be taken for a flag.
func (l launchSpec) argv(extra ...string) []string {
	flags := []string{"-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
		"--include-partial-messages", "--replay-user-messages"}
	flags = append(flags, l.keep...)
	flags = append(flags, extra...)
	if l.bin == "" {
		return append([]string{"sh", "-c", l.shell + ` "$@"`, "sh"}, flags...)
	}
	return append([]string{l.bin}, flags...)
}
