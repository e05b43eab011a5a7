package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/conformance/suite"
)

// PluginConformanceOptions are `tthost plugin conformance`'s arguments.
type PluginConformanceOptions struct {
	F *Factory
	// Plugin is an installed plugin's NAME or a PATH to a plugin binary.
	Plugin string
	// Command is the CLI command the backend drives ("" = the stand-in).
	Command string
	// CLI is the CLI name sessions are opened for ("" = the plugin's first).
	CLI string
	// Env ("K=V") is added to every session's environment.
	Env []string
	// Options ("k=v") are every session's backend options.
	Options []string
	// Timeout bounds each step of a check.
	Timeout time.Duration
	// LongPrompt, FailPrompt, Echo, SteerPrompt, SteerEcho and RecallPrompt
	// say how the CLI is made to run long, fail, answer, show steered text
	// and recall a conversation (see suite.Prompts).
	LongPrompt   string
	FailPrompt   string
	Echo         string
	SteerPrompt  string
	SteerEcho    string
	RecallPrompt string
	// Checks limits the run to these checks.
	Checks []string
	JSON   bool
}

// NewCmdPluginConformance builds `tthost plugin conformance`.
func NewCmdPluginConformance(f *Factory, runF func(context.Context, *PluginConformanceOptions) error) *cobra.Command {
	opts := &PluginConformanceOptions{F: f}
	cmd := &cobra.Command{
		Use:   "conformance NAME|PATH",
		Short: "Prove a backend plugin keeps the contract",
		Long: `conformance runs the backend conformance suite against a plugin: an
installed plugin by NAME (its recorded checksum is verified), or any plugin
binary by PATH. Each check starts the plugin afresh, as the host would, and
proves one part of the contract (docs/protocol.md); checks for a capability
the plugin does not declare for the CLI are reported as not declared.

The suite needs the CLI the backend drives to answer a prompt, to run a long
turn and to fail a turn on demand. --command is that CLI's command; without
it the suite uses a shell stand-in for backends that run a command per turn
with the prompt on stdin (the one-shot backend): it prints a line and sleeps
when the prompt holds ` + suite.MarkSleep + `, exits 3 when it holds ` + suite.MarkFail + `, and
echoes the prompt otherwise. For another CLI, say which prompts make it run
long (--long-prompt; the CLI should print something once it is busy, as the
checks first prove that the long turn runs) and fail (--fail-prompt), and
what it answers (--echo: full, first-line or none). For a backend that
declares steer, the steered turn's prompt (--steer-prompt, default the long
one) and whether its output shows the steered text (--steer-echo, default
full unless --echo is none); for one that declares resume, a prompt the CLI
answers with what it was told earlier in the conversation (--recall-prompt).

It prints a line per check and a summary: "ok" passed, "FAIL" failed (with
what was expected, what happened and which rule that breaks), "--" not
declared (the plugin does not declare the capability, so the host never
uses it), "??" unproven (nothing was found wrong, but this CLI could not
show what the check proves: the message says what is missing). --json
prints the report as one JSON object. It exits 1 when a check fails.

Checks:
` + conformanceCheckList(),
		Example: `  tthost plugin conformance oneshot
  tthost plugin conformance ./tthost-backend-mine --cli mine --command "mine-cli --stdio" \
      --long-prompt "SLEEP 60" --fail-prompt "FAIL" --echo first-line --recall-prompt "RECALL"
  tthost plugin conformance shellsession --command "bash --norc --noprofile" --env BASH_ENV=$PWD/standin.bash \
      --echo full --steer-prompt CONFORMANCE_STEER
  tthost plugin conformance codex --command "$(which codex) exec" --env CODEX_HOME=/tmp/h --check cancel_bound --json`,
		Args: exactArgs(1, "a plugin NAME or PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Plugin = args[0]
			if _, err := conformanceAssignments("--env", opts.Env); err != nil {
				return usageError{err}
			}
			if _, err := conformanceAssignments("--option", opts.Options); err != nil {
				return usageError{err}
			}
			for _, e := range []struct{ flag, value string }{{"--echo", opts.Echo}, {"--steer-echo", opts.SteerEcho}} {
				switch suite.Echo(e.value) {
				case suite.EchoDefault, suite.EchoFull, suite.EchoFirstLine, suite.EchoNone:
				default:
					return usageError{fmt.Errorf("%s %q: use full, first-line or none", e.flag, e.value)}
				}
			}
			if opts.Timeout <= 0 {
				return usageError{fmt.Errorf("--timeout must be positive, got %v", opts.Timeout)}
			}
			for _, c := range opts.Checks {
				if !isConformanceCheck(c) {
					return usageError{fmt.Errorf("--check %q is not a check; the checks are: %s", c, strings.Join(conformanceCheckNames(), ", "))}
				}
			}
			return dispatch(cmd, opts, runF, pluginConformanceRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Command, "command", "", "the CLI command the backend drives (default: the suite's shell stand-in)")
	fl.StringVar(&opts.CLI, "cli", "", "the CLI name to open sessions for (default: the first the plugin declares)")
	fl.StringArrayVar(&opts.Env, "env", nil, "add K=V to every session's environment (repeatable)")
	fl.StringArrayVar(&opts.Options, "option", nil, "set backend option k=v for every session (repeatable)")
	fl.DurationVar(&opts.Timeout, "timeout", suite.DefaultOptions.Timeout, "how long any one step (a launch, a turn, a close) may take")
	fl.StringVar(&opts.LongPrompt, "long-prompt", "", "a prompt whose turn runs until cancelled (default: "+suite.MarkSleep+")")
	fl.StringVar(&opts.FailPrompt, "fail-prompt", "", "a prompt whose turn fails (default: "+suite.MarkFail+")")
	fl.StringVar(&opts.Echo, "echo", "", "what the CLI answers to a prompt: full, first-line or none (default: full with the stand-in, else none)")
	fl.StringVar(&opts.SteerPrompt, "steer-prompt", "", "the prompt of the turn the steer check steers into (default: the long prompt)")
	fl.StringVar(&opts.SteerEcho, "steer-echo", "", "whether the steered turn's output shows the steered text: full, first-line or none (default: full unless --echo is none)")
	fl.StringVar(&opts.RecallPrompt, "recall-prompt", "", "a prompt the CLI answers with what it was told earlier in the conversation, for the resume check (default: "+suite.MarkRecall+" with the stand-in, else none)")
	fl.StringSliceVar(&opts.Checks, "check", nil, "run only these checks (comma-separated or repeated)")
	fl.BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	return cmd
}

func pluginConformanceRun(ctx context.Context, opts *PluginConformanceOptions) error {
	path, sum, err := conformancePluginRef(opts.F, opts.Plugin)
	if err != nil {
		return err
	}
	env, _ := conformanceAssignments("--env", opts.Env)
	options, _ := conformanceAssignments("--option", opts.Options)
	target := suite.Target{
		Path:      path,
		Checksum:  sum,
		CLI:       opts.CLI,
		Command:   opts.Command,
		Env:       env,
		Options:   options,
		PluginEnv: opts.F.Env,
		Prompts: suite.Prompts{
			Long:      opts.LongPrompt,
			Fail:      opts.FailPrompt,
			Echo:      suite.Echo(opts.Echo),
			Steer:     opts.SteerPrompt,
			SteerEcho: suite.Echo(opts.SteerEcho),
			Recall:    opts.RecallPrompt,
		},
	}
	out := opts.F.IO.Out
	copts := suite.Options{Only: opts.Checks, Timeout: opts.Timeout}
	if !opts.JSON {
		copts.Started = func(p suite.PluginInfo) { printConformanceHeader(out, p) }
		copts.Progress = func(r suite.Result) { printConformanceResult(out, r, opts.F.Verbose) }
	}
	report := suite.Check(ctx, target, copts)
	if opts.JSON {
		if err := printJSON(out, report); err != nil {
			return err
		}
	} else {
		printConformanceSummary(out, report)
	}
	if err := ctx.Err(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("interrupted: %w", err)}
	}
	if !report.OK() {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d checks failed: %s",
			report.Summary.Failed, len(report.Results), strings.Join(report.Failed(), ", "))}
	}
	return nil
}

// conformancePluginRef turns NAME|PATH into a binary and its checksum: a
// reference with a path separator is a file (hashed now), anything else
// the name of a discovered plugin (its recorded checksum).
func conformancePluginRef(f *Factory, ref string) (string, []byte, error) {
	if strings.ContainsRune(ref, filepath.Separator) {
		abs, err := filepath.Abs(ref)
		if err != nil {
			return "", nil, err
		}
		sum, err := client.FileSHA256(abs)
		if err != nil {
			return "", nil, fmt.Errorf("cannot read the plugin binary: %w", err)
		}
		return abs, sum, nil
	}
	dirs, err := f.PluginDirs()
	if err != nil {
		return "", nil, err
	}
	cands, err := pluginstore.Discover(dirs...)
	if err != nil {
		return "", nil, err
	}
	var names []string
	for _, c := range cands {
		if c.Name == ref {
			if len(c.Checksum) == 0 {
				return "", nil, fmt.Errorf("plugin %q at %s: %w: reinstall it (`tthost plugin install`), or test the binary by its path",
					ref, c.Path, pluginstore.ErrNoChecksum)
			}
			return c.Path, c.Checksum, nil
		}
		names = append(names, c.Name)
	}
	found := "none"
	if len(names) > 0 {
		found = strings.Join(names, ", ")
	}
	return "", nil, fmt.Errorf("no plugin named %q in %s (found: %s); give a path (e.g. ./%s) to test a binary that is not installed",
		ref, strings.Join(dirs, ", "), found, ref)
}

// conformanceAssignments turns ["K=V", ...] into a map.
func conformanceAssignments(flag string, kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

var conformanceStatusLabels = map[suite.Status]string{
	suite.StatusPass:        "ok",
	suite.StatusFail:        "FAIL",
	suite.StatusNotDeclared: "--",
	suite.StatusUnproven:    "??",
}

func printConformanceHeader(w io.Writer, p suite.PluginInfo) {
	caps := strings.Join(p.Capabilities, ", ")
	if caps == "" {
		caps = "none"
	}
	fmt.Fprintf(w, "Conformance of %s\n", p.Path)
	fmt.Fprintf(w, "%s %s (protocol %d), CLI %q (capabilities: %s)\n",
		conformanceOrUnknown(p.Name), conformanceOrUnknown(p.Version), p.ProtocolVersion, p.CLI, caps)
}

// printConformanceResult prints a check's line, a failure's message and
// the end of the plugin's log; verbose adds a pass's notes.
func printConformanceResult(w io.Writer, r suite.Result, verbose bool) {
	fmt.Fprintf(w, "  %-4s  %-30s %8s\n", conformanceStatusLabels[r.Status], r.Name, r.Duration.Round(time.Millisecond))
	switch {
	case r.Status == suite.StatusFail:
		fmt.Fprintln(w, conformanceIndent(r.Message, "        "))
		if r.Log != "" {
			fmt.Fprintf(w, "        the plugin's log:\n%s\n", conformanceIndent(conformanceLastLines(r.Log, 10), "          "))
		}
	case r.Status == suite.StatusNotDeclared:
		fmt.Fprintf(w, "        not declared: %s\n", r.Message)
	case r.Status == suite.StatusUnproven:
		fmt.Fprintln(w, conformanceIndent("unproven: "+r.Message, "        "))
	case verbose && r.Message != "":
		fmt.Fprintln(w, conformanceIndent(r.Message, "        "))
	}
}

func printConformanceSummary(w io.Writer, rep suite.Report) {
	fmt.Fprintf(w, "%d checks: %d passed, %d failed, %d not declared, %d unproven\n",
		len(rep.Results), rep.Summary.Passed, rep.Summary.Failed, rep.Summary.NotDeclared, rep.Summary.Unproven)
}

func conformanceOrUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func conformanceIndent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

func conformanceLastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func conformanceCheckNames() []string {
	var names []string
	for _, c := range suite.Checks() {
		names = append(names, c.Name)
	}
	return names
}

func isConformanceCheck(name string) bool {
	for _, n := range conformanceCheckNames() {
		if n == name {
			return true
		}
	}
	return false
}

// conformanceCheckList is the help text's list of checks.
func conformanceCheckList() string {
	var b strings.Builder
	for _, c := range suite.Checks() {
		when := ""
		if c.Requires != "" {
			when = fmt.Sprintf(" (when %q is declared)", c.Requires)
		}
		fmt.Fprintf(&b, "  %s%s\n%s\n", c.Name, when, wrap(c.Proves, 74, "      "))
	}
	return strings.TrimRight(b.String(), "\n")
}
