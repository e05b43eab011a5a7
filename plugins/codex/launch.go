package main

import (
	"path/filepath"
	"strings"

	"github.com/tthost/tthost/plugins/internal/shellwords"
)

// launchSpec says how a session's app-server is started.
type launchSpec struct {
	// argv is exec'd directly: codex's app-server, or sh -c for a command
	// that is not codex.
	argv []string
	// env holds NAME=value assignments written before codex in the command.
	env []string
	// ignored lists flags of the configured command that configure codex
	// but that `codex app-server` refuses; they are reported, not passed.
	ignored []string
}

// deriveLaunch turns the CLI's configured command into the app-server's
// command line. The configured command is a one-shot one (Tinytown's
// presets are `codex exec --dangerously-bypass-approvals-and-sandbox ...`),
// so for codex only the flags that configure codex are kept:
//
//	-c/--config key=value, --enable X, --disable X   passed on
//	-m/--model X                                       as -c model="X"
//	-p/--profile X                                     ignored and reported
//
// `codex app-server` takes -c, --enable and --disable but refuses -m and
// -p; a profile cannot be applied to it at all (codex 0.169.0: "--profile
// only applies to runtime commands", and `-c profile=` is refused as
// legacy). Everything else (exec, --dangerously-bypass-..., prompts) is
// dropped: approvals and the sandbox are the session's options.
//
// A command whose first word is not codex (or a path to a file named codex)
// is run as given under `sh -c`: it is expected to speak the app-server
// protocol itself (a wrapper script, a test fake).
func deriveLaunch(command string) (launchSpec, error) {
	env, words, err := shellwords.SplitCommand(command)
	if err != nil {
		return launchSpec{}, err
	}
	if len(words) == 0 || filepath.Base(words[0]) != "codex" {
		return launchSpec{argv: []string{"sh", "-c", command}}, nil
	}
	spec := launchSpec{argv: []string{words[0], "app-server", "--listen", "stdio://"}, env: env}
	rest := words[1:]
	for i := 0; i < len(rest); i++ {
		name, value, inline := strings.Cut(rest[i], "=")
		if !strings.HasPrefix(name, "--") {
			name, value, inline = rest[i], "", false
		}
		takesValue := true
		switch name {
		case "-c", "--config", "-m", "--model", "-p", "--profile", "--enable", "--disable":
		default:
			takesValue = false
		}
		if short := rest[i]; !takesValue && len(short) > 2 && strings.HasPrefix(short, "-c") && short[2] != '-' {
			// Clap's attached short form: -ckey=value.
			name, value, inline, takesValue = "-c", short[2:], true, true
		}
		if !takesValue {
			if rest[i] == "--" {
				break // the rest are positional arguments (a prompt)
			}
			continue
		}
		if !inline {
			if i+1 >= len(rest) {
				break // a flag without its value: nothing to pass on
			}
			i++
			value = rest[i]
		}
		switch name {
		case "-c", "--config":
			spec.argv = append(spec.argv, "-c", value)
		case "-m", "--model":
			spec.argv = append(spec.argv, "-c", "model="+tomlString(value))
		case "--enable", "--disable":
			spec.argv = append(spec.argv, name, value)
		case "-p", "--profile":
			spec.ignored = append(spec.ignored, name+" "+value)
		}
	}
	return spec, nil
}

// tomlString quotes s as a TOML basic string: -c values are parsed as TOML.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
