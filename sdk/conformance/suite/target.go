package suite

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tthost/tthost/sdk"
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
	// MarkRecall is the default recall prompt (Prompts.Recall) when the
	// suite drives its stand-in: a CLI that keeps a conversation answers it
	// with what it was told earlier in the conversation. StandInCommand
	// keeps none (the one-shot backend does not declare resume); a stand-in
	// for a backend that declares resume must answer it.
	MarkRecall = "CONFORMANCE_RECALL"
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
	// unless it is cancelled or its session closed. The checks that use it
	// first prove that it runs: the turn's first output (an
	// AssistantDelta), or a process that was not there before the turn.
	// So the CLI should print something once it is busy with it (the
	// stand-in prints "conformance stand-in: sleeping"). Default: MarkSleep.
	Long string
	// Fail is a prompt whose turn fails (a one-shot CLI exits non-zero, a
	// persistent CLI reports the turn failed). Default: MarkFail.
	Fail string
	// Echo says how the output of an ordinary prompt relates to it.
	Echo Echo
	// Steer is the prompt of the turn that the steer check steers text
	// into: a long turn, proven running as Long is, in whose output the
	// steered text then shows (SteerEcho). A CLI that takes steered input
	// only after its current step (a shell runs a steered command after the
	// running one) needs a Steer prompt that ends by itself a few seconds
	// after it started. Default: Long.
	Steer string
	// SteerEcho says whether the output of the steered turn shows the
	// steered text (a line of words, like an ordinary prompt): EchoFull or
	// EchoFirstLine (the same for one line) require it, EchoNone does not
	// look, and the steer check then reports what it could not prove.
	// Default: EchoFull unless Echo is EchoNone.
	SteerEcho Echo
	// Recall is a prompt that a CLI which keeps a conversation answers with
	// what it was told earlier in it (codextest's mock model answers
	// "REMEMBER" so). The resume check tells the CLI a fresh word, resumes
	// the conversation in a new plugin process, sends Recall and requires
	// the word back. Empty: the check reports that it could not prove the
	// context came back. Default: MarkRecall when Target.Command is empty
	// (the stand-in), else empty.
	Recall string
}

// Target is the plugin under test and how to drive it.
type Target struct {
	// Path is the plugin binary.
	Path string
	// Backend, instead of Path, is the plugin as a value in this process:
	// the suite serves it with the SDK's own gRPC server and drives it
	// through sdk/client over real gRPC (sdk/sdktest/inprocess), with no
	// binary to build or start. Every plugin launch serves the same value
	// again (its Shutdown, if it is an sdk.Shutdowner, runs at every stop).
	// What only a plugin process can show is reported StatusUnproven: the
	// handshake and checksum, stdout protection, the environment the CLI
	// inherits, a host's stop and kill, and a resume after a restart.
	Backend sdk.Backend
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
	// Not with Backend: there is no plugin process.
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
	switch {
	case t.Path == "" && t.Backend == nil:
		return t, fmt.Errorf("no plugin given: set Path (a binary) or Backend (a value served in process)")
	case t.Path != "" && t.Backend != nil:
		return t, fmt.Errorf("both a binary (Path) and a value (Backend) given: test one of them")
	case t.Backend != nil && len(t.PluginEnv) > 0:
		return t, fmt.Errorf("PluginEnv needs a plugin process: an in-process Backend has none; set the session's Env instead")
	}
	if t.Path != "" {
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
	}
	for _, e := range []struct {
		name string
		echo Echo
	}{{"echo", t.Prompts.Echo}, {"steer echo", t.Prompts.SteerEcho}} {
		if !e.echo.valid() {
			return t, fmt.Errorf("%s mode %q: use %q, %q or %q", e.name, e.echo, EchoFull, EchoFirstLine, EchoNone)
		}
	}
	standIn := t.Command == ""
	if t.Prompts.Echo == EchoDefault {
		t.Prompts.Echo = EchoNone
		if standIn {
			t.Prompts.Echo = EchoFull
		}
	}
	if t.Prompts.SteerEcho == EchoDefault {
		t.Prompts.SteerEcho = EchoFull
		if t.Prompts.Echo == EchoNone {
			t.Prompts.SteerEcho = EchoNone
		}
	}
	if standIn {
		t.Command = StandInCommand
		if t.Prompts.Recall == "" {
			t.Prompts.Recall = MarkRecall
		}
	}
	if t.Prompts.Long == "" {
		t.Prompts.Long = MarkSleep
	}
	if t.Prompts.Fail == "" {
		t.Prompts.Fail = MarkFail
	}
	if t.Prompts.Steer == "" {
		t.Prompts.Steer = t.Prompts.Long
	}
	same := func(a, b string) bool { return strings.TrimSpace(a) == strings.TrimSpace(b) }
	switch {
	case same(t.Prompts.Long, t.Prompts.Fail):
		return t, fmt.Errorf("the long and the failing prompt are the same (%q)", t.Prompts.Long)
	case same(t.Prompts.Steer, t.Prompts.Fail):
		return t, fmt.Errorf("the steer and the failing prompt are the same (%q)", t.Prompts.Steer)
	case t.Prompts.Recall != "" && (same(t.Prompts.Recall, t.Prompts.Long) || same(t.Prompts.Recall, t.Prompts.Fail)):
		return t, fmt.Errorf("the recall prompt %q is also the long or the failing prompt", t.Prompts.Recall)
	}
	return t, nil
}

// inProcess reports whether the target is a Backend value served in
// this process.
func (t Target) inProcess() bool { return t.Backend != nil }
