package main

import (
	"slices"
	"testing"
)

func TestDeriveLaunch(t *testing.T) {
	t.Parallel()
	appServer := []string{"app-server", "--listen", "stdio://"}
	codex := func(argv0 string, flags ...string) []string {
		return append(append([]string{argv0}, appServer...), flags...)
	}
	tests := []struct {
		name    string
		command string
		argv    []string
		env     []string
		ignored []string
	}{
		{
			name:    "Tinytown's codex preset becomes a bare app-server",
			command: "codex exec --dangerously-bypass-approvals-and-sandbox",
			argv:    codex("codex"),
		},
		{
			name:    "Tinytown's codex-mini preset keeps its model and effort",
			command: `codex exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`,
			argv:    codex("codex", "-c", `model="gpt-5.4-mini"`, "-c", "model_reasoning_effort=medium"),
		},
		{
			name:    "a path to codex is kept",
			command: "/usr/local/bin/codex exec --full-auto",
			argv:    codex("/usr/local/bin/codex"),
		},
		{
			name:    "a relative path to codex is kept",
			command: "./node_modules/.bin/codex exec",
			argv:    codex("./node_modules/.bin/codex"),
		},
		{
			name:    "single quotes keep a TOML table whole",
			command: `codex -c 'model_providers.mock={name="mock", base_url="http://127.0.0.1:9/v1"}' exec`,
			argv:    codex("codex", "-c", `model_providers.mock={name="mock", base_url="http://127.0.0.1:9/v1"}`),
		},
		{
			name:    "long, inline and attached forms of the flags",
			command: `codex --config a=1 --config=b=2 -cc=3 --model=o3 --enable x --disable=y exec`,
			argv:    codex("codex", "-c", "a=1", "-c", "b=2", "-c", "c=3", "-c", `model="o3"`, "--enable", "x", "--disable", "y"),
		},
		{
			name:    "a model with quotes is quoted for TOML",
			command: `codex -m 'we"ird\name'`,
			argv:    codex("codex", "-c", `model="we\"ird\\name"`),
		},
		{
			name:    "a profile is reported, not passed",
			command: "codex -p work exec --profile=other",
			argv:    codex("codex"),
			ignored: []string{"-p work", "--profile other"},
		},
		{
			name:    "a prompt after -- is not taken for flags",
			command: "codex exec -- -c not=a-flag",
			argv:    codex("codex"),
		},
		{
			name:    "a flag without its value is dropped",
			command: "codex exec -c",
			argv:    codex("codex"),
		},
		{
			name:    "assignments before codex go to its environment",
			command: "CODEX_HOME=/srv/codex OPENAI_BASE_URL='http://x' codex exec",
			argv:    codex("codex"),
			env:     []string{"CODEX_HOME=/srv/codex", "OPENAI_BASE_URL=http://x"},
		},
		{
			name:    "a command that is not codex runs as given",
			command: "python3 fake_codex.py --flag",
			argv:    []string{"sh", "-c", "python3 fake_codex.py --flag"},
		},
		{
			name:    "a program whose name only starts with codex is not codex",
			command: "codex-wrapper exec",
			argv:    []string{"sh", "-c", "codex-wrapper exec"},
		},
		{
			name:    "npx codex is run as given",
			command: "npx codex exec",
			argv:    []string{"sh", "-c", "npx codex exec"},
		},
		{
			name:    "assignments before another program stay in the shell command",
			command: "FAKE=1 /tmp/fake-app-server",
			argv:    []string{"sh", "-c", "FAKE=1 /tmp/fake-app-server"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := deriveLaunch(tt.command)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.argv, tt.argv) || !slices.Equal(got.env, tt.env) || !slices.Equal(got.ignored, tt.ignored) {
				t.Errorf("deriveLaunch(%q)\n got argv %q env %q ignored %q\nwant argv %q env %q ignored %q",
					tt.command, got.argv, got.env, got.ignored, tt.argv, tt.env, tt.ignored)
			}
		})
	}
}

// FuzzDeriveLaunch: the configured command is outside input. Whatever it
// is, deriving the launch never panics, and it either fails or yields a
// command that runs codex's app-server or the command as given.
func FuzzDeriveLaunch(f *testing.F) {
	for _, s := range []string{
		`codex exec --dangerously-bypass-approvals-and-sandbox -m gpt-5.4-mini -c model_reasoning_effort="medium"`,
		`codex -c 'a={b="c"}' --model=x -p y -- prompt`, `A=1 codex`, `"unterminated`, `python3 x.py`, `codex -c`, "a\\\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, command string) {
		spec, err := deriveLaunch(command)
		if err != nil {
			return
		}
		switch {
		case len(spec.argv) == 3 && spec.argv[0] == "sh":
			if spec.argv[1] != "-c" || spec.argv[2] != command {
				t.Fatalf("%q: not run as given: %q", command, spec.argv)
			}
		case len(spec.argv) >= 4:
			if !slices.Equal(spec.argv[1:4], []string{"app-server", "--listen", "stdio://"}) {
				t.Fatalf("%q: not an app-server: %q", command, spec.argv)
			}
			if len(spec.argv)%2 != 0 {
				t.Fatalf("%q: a flag without its value: %q", command, spec.argv)
			}
		default:
			t.Fatalf("%q: argv %q", command, spec.argv)
		}
	})
}
