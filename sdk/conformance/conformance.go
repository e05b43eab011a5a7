package conformance

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/conformance/suite"
	"github.com/tthost/tthost/sdk/sdktest/inprocess"
)

// The suite's types, for a plugin's tests. They are the engine's (package
// suite, which tthost's binary runs without linking testing), so their
// fields are documented there: go doc github.com/tthost/tthost/sdk/conformance/suite Target
// (and Prompts, Options, Report).
type (
	// Target is the plugin under test and the CLI it drives.
	Target = suite.Target
	// Prompts says which prompts make the CLI run long or fail, and how
	// its answer relates to an ordinary prompt.
	Prompts = suite.Prompts
	// Echo is how the CLI's answer relates to an ordinary prompt.
	Echo = suite.Echo
	// Options tune a run; the zero value is DefaultOptions.
	Options = suite.Options
	// Report is the result of Check.
	Report = suite.Report
	// Result is one check's outcome.
	Result = suite.Result
	// Status is a check's outcome: pass, fail, not_declared or unproven.
	Status = suite.Status
	// CheckInfo names a check and says what a pass proves.
	CheckInfo = suite.CheckInfo
	// PluginInfo is what the plugin said about itself.
	PluginInfo = suite.PluginInfo
)

// Outcomes, markers and answers; see package suite for each.
const (
	StatusPass        = suite.StatusPass
	StatusFail        = suite.StatusFail
	StatusNotDeclared = suite.StatusNotDeclared
	StatusUnproven    = suite.StatusUnproven

	EchoDefault   = suite.EchoDefault
	EchoFull      = suite.EchoFull
	EchoFirstLine = suite.EchoFirstLine
	EchoNone      = suite.EchoNone

	MarkSleep      = suite.MarkSleep
	MarkFail       = suite.MarkFail
	MarkRecall     = suite.MarkRecall
	MarkerEnv      = suite.MarkerEnv
	StandInCommand = suite.StandInCommand
	StandInCLI     = suite.StandInCLI
)

// A Target with a Backend value is served in process by the SDK's own
// gRPC server (sdk/sdktest/inprocess); the engine reaches it through this
// hook so that tthost, which runs the engine, links no plugin-side server.
func init() {
	suite.ServeInProcess = func(ctx context.Context, b sdk.Backend, cfg client.Config) (suite.InProcessServer, error) {
		return inprocess.Serve(ctx, b, cfg)
	}
}

// DefaultOptions are the bounds a run uses unless told otherwise.
var DefaultOptions = suite.DefaultOptions

// Checks lists the suite's checks in the order they run.
func Checks() []CheckInfo { return suite.Checks() }

// Check runs the suite against target and returns the report; it never
// fails itself (a target that does not start fails every check).
// `tthost plugin conformance` is Check with a printer.
func Check(ctx context.Context, target Target, opts Options) Report {
	return suite.Check(ctx, target, opts)
}

// Run runs the suite as subtests of t, one per check, for a plugin's own
// `go test`. A check that covers a capability the plugin does not declare
// passes with a log line saying so (the host never uses an undeclared
// feature, so there is nothing to prove). A check that could not prove
// what it covers against this target (StatusUnproven: an in-process
// Backend has no plugin process, a CLI that does not show steered text)
// is reported in the subtest's log with what is missing ("unproven: ..."),
// and in Check's report as unproven, never as a pass; the subtest itself
// neither skips nor fails. Options, when given, tune the run (only the
// first is used).
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Target{Path: sdktest.Build(t, ".", "tthost-backend-mycli")})
//	}
func Run(t *testing.T, target Target, opts ...Options) {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	var names []string
	for _, c := range suite.Checks() {
		names = append(names, c.Name)
	}
	for _, name := range o.Only {
		if !slices.Contains(names, name) {
			t.Fatalf("unknown check name %q; the suite's checks are %s", name, strings.Join(names, ", "))
		}
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		defer cancel()
	}
	started, progress := o.Started, o.Progress
	o.Started = func(info PluginInfo) {
		where := info.Path
		if info.InProcess {
			where = "in process"
		}
		t.Logf("plugin %s %s (%s), CLI %q, capabilities %v", info.Name, info.Version, where, info.CLI, info.Capabilities)
		if started != nil {
			started(info)
		}
	}
	// Each check becomes a subtest as soon as it ends.
	o.Progress = func(res Result) {
		t.Run(res.Name, func(t *testing.T) {
			switch res.Status {
			case StatusFail:
				t.Errorf("%s failed: %s", res.Name, res.Message)
				if res.Log != "" {
					t.Logf("the plugin's log:\n%s", res.Log)
				}
			case StatusNotDeclared:
				t.Logf("not declared: %s", res.Message)
			case StatusUnproven:
				t.Logf("unproven: %s", res.Message)
			default:
				if res.Message != "" {
					t.Logf("note: %s", res.Message)
				}
			}
			t.Logf("took %s", res.Duration.Round(time.Millisecond))
		})
		if progress != nil {
			progress(res)
		}
	}
	suite.Check(ctx, target, o)
}
