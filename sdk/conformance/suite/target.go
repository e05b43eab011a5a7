package suite

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tthost/tthost/sdk/client"
)

// Markers the stand-in CLI (StandInCommand) reacts to. The suite puts them
// in its prompts by default (see Prompts); ordinary prompts never contain
// them.
const (
	// MarkSleep makes the stand-in print a line and then sleep for an hour:
	// a long turn that only a cancel or a close ends.
	MarkSleep = "CONFORMANCE_SLEEP"
	// MarkFail makes the stand-in print a line on stderr and exit 3: a
	// failing turn.
	MarkFail = "CONFORMANCE_FAIL"
)

// StandInCommand is the default CLI command: a POSIX shell line that reads
// the whole prompt from stdin, then
//
//   - with MarkSleep in it, prints "conformance stand-in: sleeping" and
//     sleeps (exec, so a cancel that stops the shell stops the sleep);
//   - with MarkFail in it, prints a line on stderr and exits 3;
//   - otherwise prints the prompt back, followed by a newline.
//
// It suits any backend that runs the configured command once per turn and
// feeds the prompt on stdin (the one-shot backend does). A backend that
// drives a CLI of its own needs a command for that CLI and the Prompts
// that CLI understands instead.
const StandInCommand = `p=$(cat); case $p in ` +
	`*` + MarkFail + `*) echo 'conformance stand-in: failing as asked' >&2; exit 3;; ` +
	`*` + MarkSleep + `*) echo 'conformance stand-in: sleeping'; exec sleep 3600;; ` +
	`esac; printf '%s\n' "$p"`

// StandInCLI is the CLI name sessions are opened for when the plugin only
// declares the wildcard "*": a name no real CLI has, so that a backend
// cannot special-case it.
const StandInCLI = "conformance-cli"

// Echo says what the CLI answers to an ordinary prompt, so that checks can
// prove that text arrives intact and stays in its own session.
type Echo string

const (
	// EchoDefault is EchoFull when Target.Command is empty (the stand-in
	// echoes), else EchoNone.
	EchoDefault Echo = ""
	// EchoFull: the turn's output contains the whole prompt.
	EchoFull Echo = "full"
	// EchoFirstLine: the turn's output contains the prompt's first line
	// (codextest's mock model answers "echo: <first line>").
	EchoFirstLine Echo = "first-line"
	// EchoNone: the output is not compared with the prompt.
	EchoNone Echo = "none"
)

func (e Echo) valid() bool {
	switch e {
	case EchoDefault, EchoFull, EchoFirstLine, EchoNone:
		return true
	}
	return false
}

// Prompts are what the suite sends to make the CLI behave as a check
// needs. The zero value fits StandInCommand.
type Prompts struct {
	// Long is a prompt whose turn keeps running for at least 10 seconds
	// unless it is cancelled or its session closed. Default: MarkSleep.
	Long string
	// Fail is a prompt whose turn fails (a one-shot CLI exits non-zero, a
	// persistent CLI reports the turn failed). Default: MarkFail.
	Fail string
	// Echo says how the output of an ordinary prompt relates to it.
	Echo Echo
}

// Target is the plugin under test and how to drive it.
type Target struct {
	// Path is the plugin binary.
	Path string
	// Checksum is the binary's SHA-256; empty means compute it from Path.
	Checksum []byte
	// CLI is the CLI name sessions are opened for. Default: the first CLI
	// the plugin declares other than "*", else StandInCLI.
	CLI string
	// Command is the CLI command the backend drives (SessionConfig.Command):
	// a real CLI or a stand-in. Default: StandInCommand.
	Command string
	// Env is added to every session's environment (SessionConfig.Env).
	Env map[string]string
	// PluginEnv is added to the plugin process's environment ("KEY=VALUE").
	PluginEnv []string
	// Options are every session's backend options (SessionConfig.Options).
	Options map[string]string
	// Workdir is the CLI's working directory. Default: a fresh temporary
	// directory per check, removed after it.
	Workdir string
	// Prompts make the CLI run long, fail or echo.
	Prompts Prompts
}

// withDefaults returns the target with everything but CLI filled in (CLI
// needs the plugin's Describe answer).
func (t Target) withDefaults() (Target, error) {
	if t.Path == "" {
		return t, fmt.Errorf("no plugin binary given")
	}
	abs, err := filepath.Abs(t.Path)
	if err != nil {
		return t, err
	}
	t.Path = abs
	if len(t.Checksum) == 0 {
		if t.Checksum, err = client.FileSHA256(t.Path); err != nil {
			return t, fmt.Errorf("checksum of the plugin binary: %w", err)
		}
	}
	if !t.Prompts.Echo.valid() {
		return t, fmt.Errorf("echo mode %q: use %q, %q or %q", t.Prompts.Echo, EchoFull, EchoFirstLine, EchoNone)
	}
	if t.Prompts.Echo == EchoDefault {
		t.Prompts.Echo = EchoNone
		if t.Command == "" {
			t.Prompts.Echo = EchoFull
		}
	}
	if t.Command == "" {
		t.Command = StandInCommand
	}
	if t.Prompts.Long == "" {
		t.Prompts.Long = MarkSleep
	}
	if t.Prompts.Fail == "" {
		t.Prompts.Fail = MarkFail
	}
	if strings.TrimSpace(t.Prompts.Long) == strings.TrimSpace(t.Prompts.Fail) {
		return t, fmt.Errorf("the long and the failing prompt are the same (%q)", t.Prompts.Long)
	}
	return t, nil
}
