package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestResolvePromptMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode promptMode
		cli  string
		want promptMode
	}{
		{modeAuto, "auggie", modeInstructionFile},
		{modeAuto, "aider", modeMessageFile},
		{modeAuto, "/opt/bin/aider --yes --message", modeMessageFile},
		{modeAuto, "claude", modeStdin},
		{modeAuto, "codex", modeStdin},
		{modeAuto, "", modeStdin},
		{modeStdin, "auggie", modeStdin},
		{modeMessageFile, "claude", modeMessageFile},
		{modeInstructionFile, "gemini", modeInstructionFile},
	}
	for _, tt := range tests {
		if got := tt.mode.resolve(tt.cli); got != tt.want {
			t.Errorf("%s.resolve(%q) = %s, want %s", tt.mode, tt.cli, got, tt.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	const file = "/tmp/p/prompt.md"
	tests := []struct {
		name    string
		command string
		mode    promptMode
		want    string
	}{
		{"stdin leaves the command alone", "claude -p\n", modeStdin, "claude -p\n"},
		{"an instruction file is appended", "auggie --print", modeInstructionFile, "auggie --print --instruction-file '/tmp/p/prompt.md'"},
		{"trailing whitespace does not end the command early", "auggie\n", modeInstructionFile, "auggie --instruction-file '/tmp/p/prompt.md'"},
		{"aider's trailing --message becomes --message-file", "aider --yes --message", modeMessageFile, "aider --yes --message-file '/tmp/p/prompt.md'"},
		{"a trailing --message followed by blanks is still trailing", "aider --message \n", modeMessageFile, "aider --message-file '/tmp/p/prompt.md'"},
		{"a command that is only --message", "--message", modeMessageFile, "--message-file '/tmp/p/prompt.md'"},
		{"without --message the flag is appended", "aider --yes", modeMessageFile, "aider --yes --message-file '/tmp/p/prompt.md'"},
		{"--no-message is not --message", "aider --no-message", modeMessageFile, "aider --no-message --message-file '/tmp/p/prompt.md'"},
	}
	for _, tt := range tests {
		if got := commandLine(tt.command, tt.mode, file); got != tt.want {
			t.Errorf("%s: commandLine(%q) = %q, want %q", tt.name, tt.command, got, tt.want)
		}
	}
}

// TestShellQuoteSurvivesSh proves the quoting with the real shell.
func TestShellQuoteSurvivesSh(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	for _, s := range []string{
		"", "plain", "it's", "''", "'", "a b  c", "$HOME", "${x:-y}", "`id`", `"`, `\`, `\'`,
		"new\nline", "*", "; rm -rf /", "héllo ✓ 日本",
	} {
		cmd := exec.Command("sh", "-c", "printf %s "+shellQuote(s))
		cmd.Env = procs.Environ()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		out, err := cmd.Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printed %q, %v for %q (quoted %s)", out, err, s, shellQuote(s))
		}
	}
}

// fakeCLI writes a shell script that reports how it got its prompt: its
// arguments, stdin, and the prompt file's content and modes. It runs as
// `sh script` (not exec'd), so a parallel fork holding the script open for
// writing cannot make it "text file busy".
func fakeCLI(t *testing.T) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "fake-cli")
	const body = `for a in "$@"; do printf 'arg=%s\n' "$a"; last=$a; done
printf 'stdin=%s\n' "$(cat)"
if [ -f "$last" ]; then
	printf 'mode=%s\n' "$(stat -c %a "$last")"
	printf 'dirmode=%s\n' "$(stat -c %a "$(dirname "$last")")"
	printf 'file=%s\n' "$(cat "$last")"
fi
`
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return "sh " + shellQuote(script)
}

const trickyPrompt = `it's a "prompt" with $HOME, ` + "`x` and ✓"

// promptReport parses fakeCLI's output. file is the prompt file's path (the
// last argument) when there was one.
func promptReport(t *testing.T, out string) (args []string, report map[string]string, file string) {
	t.Helper()
	report = map[string]string{}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			t.Fatalf("unexpected line %q in:\n%s", line, out)
		}
		if k == "arg" {
			args = append(args, v)
			continue
		}
		report[k] = v
	}
	if _, ok := report["file"]; ok {
		file = args[len(args)-1]
	}
	return args, report, file
}

func TestPromptDelivery(t *testing.T) {
	t.Parallel()
	const file = "FILE" // stands for the prompt file's path in want
	tests := []struct {
		name   string
		cli    string
		suffix string   // appended to the fake CLI's command
		mode   string   // option prompt_mode
		args   []string // with FILE for the prompt file
		stdin  bool     // the prompt arrives on stdin, not in a file
	}{
		{name: "auggie gets an instruction file", cli: "auggie", args: []string{"--instruction-file", file}},
		{name: "aider's trailing --message becomes --message-file", cli: "aider", suffix: " --yes --message", args: []string{"--yes", "--message-file", file}},
		{name: "aider without --message gets --message-file", cli: "aider", suffix: " --yes", args: []string{"--yes", "--message-file", file}},
		{name: "a raw aider command line is recognised", cli: "/opt/bin/aider --yes --message", suffix: " --message\n", args: []string{"--message-file", file}},
		{name: "claude reads the prompt on stdin", cli: "claude", suffix: " -p", args: []string{"-p"}, stdin: true},
		{name: "prompt_mode instruction-file applies to any CLI", cli: "claude", mode: "instruction-file", args: []string{"--instruction-file", file}},
		{name: "prompt_mode message-file applies to any CLI", cli: "codex", mode: "message-file", args: []string{"--message-file", file}},
		{name: "prompt_mode stdin overrides auggie's file", cli: "auggie", mode: "stdin", stdin: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			o := openOpts{cli: tt.cli, command: fakeCLI(t) + tt.suffix}
			if tt.mode != "" {
				o.options = map[string]string{optPromptMode: tt.mode}
			}
			s, rec := openSession(t, procs, o)
			c, out := runTurn(t, s, rec, sdk.Input{Text: trickyPrompt})
			if c.Status != sdk.StatusCompleted {
				t.Fatalf("turn = %s, output:\n%s", fmtCompleted(c), out)
			}
			args, report, path := promptReport(t, out)
			checkPromptReport(t, tt.args, tt.stdin, args, report, path, trickyPrompt)
		})
	}
}

// checkPromptReport checks a fakeCLI report against the expected arguments
// (wantArgs with "FILE" for the prompt file) and delivery.
func checkPromptReport(t *testing.T, wantArgs []string, stdin bool, args []string, report map[string]string, path, prompt string) {
	t.Helper()
	if stdin {
		if !slices.Equal(args, wantArgs) || report["stdin"] != prompt || path != "" {
			t.Errorf("want args %q and the prompt on stdin only; got args %q report %q", wantArgs, args, report)
		}
		return
	}
	want := slices.Clone(wantArgs)
	want[slices.Index(want, "FILE")] = path
	if !slices.Equal(args, want) || path == "" {
		t.Errorf("args = %q, want %q", args, want)
	}
	if report["stdin"] != "" || report["file"] != prompt || report["mode"] != "600" || report["dirmode"] != "700" {
		t.Errorf("report = %q, want empty stdin, the prompt in a 0600 file in a 0700 dir", report)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after the turn (stat: %v)", p, err)
		}
	}
}

// TestPromptFilePathIsQuotedForSh puts the prompt file under a directory
// whose name the shell would otherwise split and expand. Not parallel: it
// changes TMPDIR for the process.
func TestPromptFilePathIsQuotedForSh(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), `it's a $dir; "x"`)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	procs := sdktest.TrackProcesses(t)
	s, rec := openSession(t, procs, openOpts{cli: "auggie", command: fakeCLI(t)})
	c, out := runTurn(t, s, rec, sdk.Input{Text: trickyPrompt})
	if c.Status != sdk.StatusCompleted {
		t.Fatalf("turn = %s, output:\n%s", fmtCompleted(c), out)
	}
	args, report, path := promptReport(t, out)
	if !strings.HasPrefix(path, tmp+"/") {
		t.Errorf("prompt file %q is not under TMPDIR %q", path, tmp)
	}
	checkPromptReport(t, []string{"--instruction-file", "FILE"}, false, args, report, path, trickyPrompt)
}
