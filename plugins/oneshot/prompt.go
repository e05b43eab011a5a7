package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tthost/tthost/sdk"
)

// promptMode says how a turn's prompt reaches the CLI.
type promptMode string

const (
	// modeAuto picks by CLI name (see resolve).
	modeAuto promptMode = "auto"
	// modeStdin pipes the prompt into the command, like Tinytown's
	// `cat prompt | <cmd>`, without the file.
	modeStdin promptMode = "stdin"
	// modeInstructionFile appends `--instruction-file '<file>'` (auggie).
	modeInstructionFile promptMode = "instruction-file"
	// modeMessageFile passes `--message-file '<file>'` (aider).
	modeMessageFile promptMode = "message-file"
)

const optPromptMode = "prompt_mode"

var promptModes = []promptMode{modeAuto, modeStdin, modeInstructionFile, modeMessageFile}

// parseOptions validates SessionConfig.Options. Unknown keys are rejected,
// as the schema says, so a misspelt option fails at OpenSession instead of
// being silently ignored.
func parseOptions(opts map[string]string) (promptMode, error) {
	mode := modeAuto
	for k, v := range opts {
		if k != optPromptMode {
			return "", fmt.Errorf("%w: unknown option %q: the oneshot backend takes only %q", sdk.ErrInvalidConfig, k, optPromptMode)
		}
		if v == "" {
			continue
		}
		if !slices.Contains(promptModes, promptMode(v)) {
			return "", fmt.Errorf("%w: option %s=%q: want one of auto, stdin, instruction-file, message-file", sdk.ErrInvalidConfig, optPromptMode, v)
		}
		mode = promptMode(v)
	}
	return mode, nil
}

// resolve turns modeAuto into the delivery the CLI understands. auggie reads
// an instruction file. aider's preset ends in `--message`, which Tinytown fed
// through stdin and so left without an argument; it gets a message file.
// Everything else reads stdin.
func (m promptMode) resolve(cliName string) promptMode {
	if m != modeAuto {
		return m
	}
	switch cliBase(cliName) {
	case "auggie":
		return modeInstructionFile
	case "aider":
		return modeMessageFile
	}
	return modeStdin
}

// cliBase reduces a CLI name to its program name; the host passes the raw
// command as the name when no preset matched ("/usr/bin/aider --yes").
func cliBase(name string) string {
	f := strings.Fields(name)
	if len(f) == 0 {
		return ""
	}
	return filepath.Base(f[0])
}

// commandLine returns the shell command that makes the CLI read the prompt
// from file. For modeStdin the command is unchanged.
func commandLine(command string, mode promptMode, file string) string {
	// Trailing whitespace (a newline from a TOML multi-line string) would
	// otherwise end the command before the added argument.
	trimmed := strings.TrimRight(command, " \t\r\n")
	switch mode {
	case modeInstructionFile:
		return trimmed + " --instruction-file " + shellQuote(file)
	case modeMessageFile:
		if rest, ok := strings.CutSuffix(trimmed, "--message"); ok && (rest == "" || strings.ContainsAny(rest[len(rest)-1:], " \t\r\n")) {
			return rest + "--message-file " + shellQuote(file)
		}
		return trimmed + " --message-file " + shellQuote(file)
	}
	return command
}

// shellQuote quotes s as one sh word: inside single quotes nothing is
// special except the quote itself, which is closed, emitted as "'" and
// reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// writePromptFile writes the prompt to a file only this user can read, in a
// fresh private directory (the prompt may hold secrets from the town), and
// returns the file and the directory to remove when the turn ends.
func writePromptFile(text string) (file, dir string, err error) {
	dir, err = os.MkdirTemp("", "tthost-oneshot-") // mode 0700
	if err != nil {
		return "", "", fmt.Errorf("prompt file: %w", err)
	}
	file = filepath.Join(dir, "prompt.md")
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("prompt file: %w", err)
	}
	return file, dir, nil
}
