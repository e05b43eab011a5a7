package suite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
)

// Options tune a run of the suite. The zero value is DefaultOptions.
type Options struct {
	// Only runs just the named checks (nil: all of them).
	Only []string
	// Timeout bounds every step: a launch, an open, a turn, a close.
	Timeout time.Duration
	// CancelBound is how long a cancelled turn may take to end.
	CancelBound time.Duration
	// ExitBound is how long the plugin and every process it started may
	// take to be gone after its host is killed.
	ExitBound time.Duration
	// SteerBound is how long steered text may take to show in the output
	// of the turn it was steered into (Prompts.SteerEcho).
	SteerBound time.Duration
	// Sessions is how many sessions concurrent_isolation runs at once (at
	// least 2).
	Sessions int
	// Started, when set, is called once the plugin has described itself,
	// before the first check.
	Started func(PluginInfo)
	// Progress, when set, receives each result as soon as its check ends.
	Progress func(Result)
}

// DefaultOptions are the bounds a run uses unless told otherwise.
var DefaultOptions = Options{
	Timeout:     60 * time.Second,
	CancelBound: 5 * time.Second,
	ExitBound:   10 * time.Second,
	SteerBound:  30 * time.Second,
	Sessions:    4,
}

func (o Options) withDefaults() Options {
	d := DefaultOptions
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.CancelBound <= 0 {
		o.CancelBound = d.CancelBound
	}
	if o.ExitBound <= 0 {
		o.ExitBound = d.ExitBound
	}
	if o.SteerBound <= 0 {
		o.SteerBound = d.SteerBound
	}
	if o.Sessions < 2 {
		o.Sessions = d.Sessions
	}
	return o
}

// CheckInfo describes one check.
type CheckInfo struct {
	// Name is stable: reports, --json output and Options.Only use it.
	Name string
	// Requires is the capability the check needs declared, or "".
	Requires sdk.Capability
	// Proves says, in a sentence, what a pass proves.
	Proves string
}

type check struct {
	CheckInfo
	run func(*run)
	// process, when set, is why the check needs a plugin process: against
	// an in-process Backend it does not run and is reported unproven.
	process string
}

// checks is the suite, in the order it runs.
var checks = []check{
	{CheckInfo: CheckInfo{"handshake_describe", "",
		"the plugin starts through the go-plugin handshake with a verified checksum and answers Describe validly (name, version, protocol 1, CLIs, capabilities, options schema)"},
		run: checkHandshake},
	{CheckInfo: CheckInfo{"stdout_pollution", "",
		"`--describe` prints exactly one JSON document, the Describe answer, and the plugin still starts and serves a turn when the host's environment makes the runtime and its logs noisy"},
		run: checkStdoutPollution, process: "stdout protection is the plugin process's"},
	{CheckInfo: CheckInfo{"open_close", "",
		"sessions open with SessionReady first, close gracefully and immediately with Exited last, close again without error, refuse input once closed (ErrSessionNotFound), and an immediate close ends a running turn as interrupted"},
		run: checkOpenClose},
	{CheckInfo: CheckInfo{"turn_event_order", "",
		"a turn's events carry its id in a valid order (TurnStarted … exactly one TurnCompleted, then AwaitingInput), seq has no gaps, a turn sent while one runs fails with ErrTurnRunning, and urgent input on an idle session starts a turn"},
		run: checkTurnOrder},
	{CheckInfo: CheckInfo{"cancel_bound", sdk.CapInterrupt,
		"a long turn, first seen running (its output or its CLI process) and still running a moment later, ends as interrupted within the cancel bound once cancelled; a cancel without a turn answers no_turn, and the session takes a new turn afterwards"},
		run: checkCancel},
	{CheckInfo: CheckInfo{"steer", sdk.CapSteer,
		"urgent input during a turn seen running is steered into it (delivery steered, the running turn's id, no second turn), and the steered text reaches the CLI: it shows in that turn's output or transcript"},
		run: checkSteer},
	{CheckInfo: CheckInfo{"persistent", sdk.CapPersistent,
		"one CLI process serves consecutive turns of a session: a process of the session outlives its first turn and is still there while the second runs, and the second turn starts no new process under the plugin"},
		run: checkPersistent},
	{CheckInfo: CheckInfo{"resume", sdk.CapResume,
		"SessionReady gives a runtime session id; in a new plugin process a session opened with it is resumed and its CLI recalls a word told before the restart (the recall prompt); an unknown id gives a context-lost reason, never an error"},
		run: checkResume},
	{CheckInfo: CheckInfo{"concurrent_isolation", "",
		"several sessions run turns at once, and each gets only its own events, output and transcript"},
		run: checkIsolation},
	{CheckInfo: CheckInfo{"large_and_unicode", "",
		"a 1 MiB prompt and non-ASCII text (héllo ✓ 日本 🚀) go through a turn intact"},
		run: checkLargeUnicode},
	{CheckInfo: CheckInfo{"errors_in_band", "",
		"a failing turn is reported in the stream (TurnCompleted failed with its reason, or an Error event), and bad requests get the documented codes (sdk.ErrInvalidConfig, ErrUnsupported)"},
		run: checkErrorsInBand},
	{CheckInfo: CheckInfo{"child_environment", "",
		"the processes a session starts (found by the run's marker and, for a binary, as the plugin's descendants) get the session's Env and none of the plugin's internal variables (the handshake cookie TTHOST_BACKEND_PLUGIN, go-plugin's PLUGIN_*, sdk.InternalEnv), so a tthost run by the CLI keeps its stdout"},
		run: checkChildEnvironment, process: "the variables a CLI must not inherit are those of a plugin process"},
	{CheckInfo: CheckInfo{"no_process_after_close", "",
		"when CloseSession returns (immediate during a turn, graceful when idle), no process the session started is alive"},
		run: checkNoProcessAfterClose},
	{CheckInfo: CheckInfo{"no_process_after_host_cancel", "",
		"when the host stops the plugin (Plugin.Stop) during a turn, the plugin closes its sessions and every process it started is gone before it exits"},
		run: checkNoProcessAfterHostCancel, process: "it stops the plugin process"},
	{CheckInfo: CheckInfo{"no_process_after_host_kill", "",
		"when the host is killed (SIGKILL) during a turn, the plugin and every process it started are gone within the exit bound"},
		run: checkNoProcessAfterHostKill, process: "it needs a plugin process whose host can be killed"},
}

// Checks lists the suite's checks in the order they run.
func Checks() []CheckInfo {
	out := make([]CheckInfo, len(checks))
	for i, c := range checks {
		out[i] = c.CheckInfo
	}
	return out
}

// Check runs the suite against target and returns the report. It never
// fails itself: a problem with the target (a missing binary, a plugin that
// does not start) is reported as failed checks.
func Check(ctx context.Context, target Target, opts Options) Report {
	var report Report
	s := newSuite(ctx, target, opts)
	report.Plugin = s.info()
	if s.opts.Started != nil {
		s.opts.Started(report.Plugin)
	}
	for _, name := range s.unknownChecks() {
		report.add(Result{Name: name, Status: StatusFail, Message: fmt.Sprintf("no such check; the suite's checks are %s", strings.Join(checkNames(), ", "))})
	}
	for _, c := range checks {
		if !s.selected(c.Name) {
			continue
		}
		res := s.runCheck(c)
		report.add(res)
		if s.opts.Progress != nil {
			s.opts.Progress(res)
		}
	}
	return report
}

// suite is one run: the target with its defaults, and what Describe said.
type suite struct {
	ctx    context.Context
	opts   Options
	target Target
	desc   sdk.Description
	cli    sdk.CLI
	// unusable says why nothing can run (a bad target); problem why only
	// handshake_describe can (the plugin does not start or serve the CLI).
	unusable, problem string
}

func newSuite(ctx context.Context, target Target, opts Options) *suite {
	s := &suite{ctx: ctx, opts: opts.withDefaults()}
	var err error
	if s.target, err = target.withDefaults(); err != nil {
		s.target = target
		s.unusable = fmt.Sprintf("the target is not usable: %v", err)
		return s
	}
	s.describe()
	return s
}

// describe launches the plugin once to learn what it declares, which
// decides the CLI under test and the checks that apply.
func (s *suite) describe() {
	r, err := newRun(s.ctx, s.target, sdk.Description{}, sdk.CLI{}, s.opts)
	if err != nil {
		s.unusable = err.Error()
		return
	}
	defer r.teardown()
	p, err := r.tryLaunch()
	if err != nil {
		s.problem = fmt.Sprintf("the plugin does not start, so nothing else can be checked: %v", err)
		return
	}
	s.desc = p.Description()
	if s.target.CLI == "" {
		s.target.CLI = defaultCLI(s.desc)
	}
	cli, ok := s.desc.Lookup(s.target.CLI)
	if !ok {
		s.problem = fmt.Sprintf("the plugin does not serve CLI %q: it declares %s", s.target.CLI, cliNames(s.desc))
		return
	}
	s.cli = cli
}

// defaultCLI is the first CLI the plugin declares by name, else StandInCLI.
func defaultCLI(d sdk.Description) string {
	for _, c := range d.CLIs {
		if c.Name != sdk.AnyCLI && c.Name != "" {
			return c.Name
		}
	}
	return StandInCLI
}

func cliNames(d sdk.Description) string {
	var names []string
	for _, c := range d.CLIs {
		names = append(names, fmt.Sprintf("%q", c.Name))
	}
	if len(names) == 0 {
		return "no CLI"
	}
	return strings.Join(names, ", ")
}

func (s *suite) info() PluginInfo {
	info := PluginInfo{
		Path:            s.target.Path,
		InProcess:       s.target.inProcess(),
		SHA256:          hexSum(s.target.Checksum),
		Name:            s.desc.Name,
		Version:         s.desc.Version,
		ProtocolVersion: s.desc.ProtocolVersion,
		CLI:             s.target.CLI,
		Command:         s.target.Command,
		Capabilities:    []string{},
	}
	for _, c := range s.cli.Capabilities {
		info.Capabilities = append(info.Capabilities, string(c))
	}
	return info
}

func (s *suite) selected(name string) bool {
	return len(s.opts.Only) == 0 || slices.Contains(s.opts.Only, name)
}

func (s *suite) unknownChecks() []string {
	var unknown []string
	for _, n := range s.opts.Only {
		if !slices.Contains(checkNames(), n) {
			unknown = append(unknown, n)
		}
	}
	return unknown
}

func checkNames() []string {
	names := make([]string, len(checks))
	for i, c := range checks {
		names[i] = c.Name
	}
	return names
}

// runCheck runs one check with a harness of its own and always tears it
// down, whatever the check did.
func (s *suite) runCheck(c check) Result {
	start := time.Now()
	switch {
	case s.unusable != "":
		return Result{Name: c.Name, Status: StatusFail, Message: "not run: " + s.unusable}
	case s.problem != "" && c.Name != "handshake_describe":
		return Result{Name: c.Name, Status: StatusFail, Message: "not run: " + s.problem}
	}
	if c.Requires != "" && !s.cli.Has(c.Requires) {
		return Result{Name: c.Name, Status: StatusNotDeclared, Duration: time.Since(start),
			Message: fmt.Sprintf("the plugin does not declare %q for CLI %q, so the host never uses it", c.Requires, s.target.CLI)}
	}
	if c.process != "" && s.target.inProcess() {
		return Result{Name: c.Name, Status: StatusUnproven,
			Message: fmt.Sprintf("not run in process: %s, and an in-process Backend has none; run the suite against the plugin binary (Target.Path) to prove it", c.process)}
	}
	if err := s.ctx.Err(); err != nil {
		return Result{Name: c.Name, Status: StatusFail, Message: "not run: " + err.Error()}
	}
	r, err := newRun(s.ctx, s.target, s.desc, s.cli, s.opts)
	if err != nil {
		return Result{Name: c.Name, Status: StatusFail, Message: "not run: " + err.Error()}
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(failNow); !ok {
					panic(p)
				}
			}
		}()
		c.run(r)
	}()
	r.teardown()
	return r.result(c.Name, time.Since(start))
}
