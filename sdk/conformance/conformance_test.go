package conformance_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/conformance/internal/brokenplugin/broken"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests run the suite against tthost's own backends, as CI does, and
// against a deliberately broken plugin to prove that it catches faults.

func TestMain(m *testing.M) { sdktest.RunMain(m) }

const (
	brokenPkg  = "github.com/tthost/tthost/sdk/conformance/internal/brokenplugin"
	examplePkg = "github.com/tthost/tthost/sdk/examples/shellsession"
)

// opts gives turns room under -race on a small machine.
var opts = conformance.Options{Timeout: 90 * time.Second}

// pluginEnv marks the plugin's processes for the test's own leak check
// (beside the suite's) and keeps race-built children from idling at exit.
func pluginEnv(procs *sdktest.Processes) []string {
	return []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}
}

// TestExampleShellSessionBackend: the example backend (one persistent
// shell per session) driving bash with the example's stand-in functions,
// which echo the suite's prompts, sleep and fail on its markers, and give
// a steered turn a few seconds before the steered line runs.
func TestExampleShellSessionBackend(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, examplePkg, "tthost-backend-shellsession")
	standin, err := filepath.Abs(filepath.Join("..", "examples", "shellsession", "testdata", "standin.bash"))
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Target{
		Path:      bin,
		Command:   "bash --norc --noprofile",
		Env:       map[string]string{"BASH_ENV": standin},
		PluginEnv: pluginEnv(procs),
		Prompts:   conformance.Prompts{Echo: conformance.EchoFull, Steer: "CONFORMANCE_STEER"},
	}, opts)
}

// fast bounds suit the broken plugin, whose turns take no time.
var fast = conformance.Options{CancelBound: time.Second, ExitBound: 3 * time.Second, SteerBound: 3 * time.Second, Timeout: 30 * time.Second}

// defects are the broken plugin's defects with the checks each must fail
// and what their message must say beside the rule.
var defects = []struct {
	defect   string
	failing  []string
	mentions string
}{
	{"bad-describe", []string{"handshake_describe"}, "version is empty"},
	{"stdout-pollution", []string{"stdout_pollution"}, "did not start"},
	{"close-completes", []string{"open_close"}, "ended completed; want interrupted"},
	{"double-complete", []string{"turn_event_order"}, "a second TurnCompleted"},
	{"slow-cancel", []string{"cancel_bound"}, "cancel bound"},
	{"cancel-unproven", []string{"cancel_bound"}, "on its own"},
	{"cancel-unproven-quiet", []string{"cancel_bound"}, "the cancel is not what ended it"},
	{"steer-discard", []string{"steer"}, "never got the text"},
	{"not-persistent", []string{"persistent"}, "outlived its first turn"},
	{"resume-forgets", []string{"resume"}, "does not recall"},
	{"crosstalk", []string{"concurrent_isolation"}, "the prompt of session"},
	{"truncate-large", []string{"large_and_unicode"}, "does not contain"},
	{"silent-failure", []string{"errors_in_band"}, "want failed"},
	{"leak-env", []string{"child_environment"}, "TTHOST_BACKEND_PLUGIN"},
	{"leak-env-hidden", []string{"child_environment"}, "TTHOST_BACKEND_PLUGIN"},
	{"leak-child", []string{"no_process_after_close", "no_process_after_host_cancel", "no_process_after_host_kill"}, "still"},
}

// TestEveryDefectIsTested: each defect the broken plugin has is a case of
// TestBrokenPlugin, and each check the suite has is failed by one.
func TestEveryDefectIsTested(t *testing.T) {
	tested := map[string]bool{}
	failed := map[string]bool{}
	for _, c := range defects {
		tested[c.defect] = true
		for _, f := range c.failing {
			failed[f] = true
		}
	}
	for _, d := range broken.Defects {
		if !tested[d] {
			t.Errorf("defect %s has no case in TestBrokenPlugin", d)
		}
	}
	for _, c := range conformance.Checks() {
		if !failed[c.Name] {
			t.Errorf("no defect of the broken plugin fails check %s", c.Name)
		}
	}
}

// TestBrokenPlugin: the suite passes the broken plugin without defects,
// and fails each defect in the checks it breaks, naming the rule; a
// defect is run against those checks only.
func TestBrokenPlugin(t *testing.T) {
	bin := sdktest.Build(t, brokenPkg, "tthost-backend-broken")
	t.Run("no defect", func(t *testing.T) {
		t.Parallel()
		procs := sdktest.TrackProcesses(t)
		report := conformance.Check(context.Background(), conformance.Target{Path: bin, PluginEnv: pluginEnv(procs)}, fast)
		for _, res := range report.Results {
			if res.Status != conformance.StatusPass {
				t.Errorf("%s is %s on a good plugin, want pass: %s", res.Name, res.Status, res.Message)
			}
		}
		if len(report.Results) != len(conformance.Checks()) {
			t.Errorf("%d results for %d checks", len(report.Results), len(conformance.Checks()))
		}
	})
	for _, c := range defects {
		t.Run(c.defect, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			opts := fast
			opts.Only = c.failing
			report := conformance.Check(context.Background(), conformance.Target{
				Path:      bin,
				PluginEnv: append(pluginEnv(procs), broken.DefectsEnv+"="+c.defect),
			}, opts)
			checkFails(t, report, c.defect, c.failing, c.mentions)
		})
	}
}

func checkFails(t *testing.T, report conformance.Report, defect string, failing []string, mentions string) {
	t.Helper()
	for _, want := range failing {
		res, _ := report.Result(want)
		if res.Status != conformance.StatusFail {
			t.Errorf("defect %s: check %s %s, want fail (failed: %v): %s", defect, want, res.Status, report.Failed(), res.Message)
		} else if !strings.Contains(res.Message, mentions) || !strings.Contains(res.Message, "rule:") {
			t.Errorf("defect %s: check %s's message does not say %q and the rule:\n%s", defect, want, mentions, res.Message)
		}
	}
	if report.OK() {
		t.Errorf("defect %s: the report is OK", defect)
	}
	t.Logf("defect %s fails %v", defect, report.Failed())
}

// inProcessOnly are the checks an in-process target cannot prove: they
// are reported unproven, never passed.
var inProcessOnly = map[string]string{
	"handshake_describe":           "only the Describe answer was checked",
	"stdout_pollution":             "not run in process",
	"resume":                       "served the same Backend value again",
	"child_environment":            "not run in process",
	"no_process_after_host_cancel": "not run in process",
	"no_process_after_host_kill":   "not run in process",
}

// TestBrokenBackendInProcess: the suite against the broken backend as a
// value served in this process: the good backend passes every check that
// needs no plugin process and is unproven in the others; defects are
// found in process too.
func TestBrokenBackendInProcess(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	env := map[string]string{sdktest.MarkerEnv: procs.Marker()}
	report := conformance.Check(context.Background(), conformance.Target{Backend: broken.New(""), Env: env}, fast)
	if !report.Plugin.InProcess || report.Plugin.Path != "" {
		t.Errorf("plugin info %+v; want in process, no path", report.Plugin)
	}
	for _, res := range report.Results {
		want := conformance.StatusPass
		if _, ok := inProcessOnly[res.Name]; ok {
			want = conformance.StatusUnproven
		}
		switch {
		case res.Status != want:
			t.Errorf("%s is %s in process, want %s: %s", res.Name, res.Status, want, res.Message)
		case want == conformance.StatusUnproven && !strings.Contains(res.Message, inProcessOnly[res.Name]):
			t.Errorf("%s is unproven without saying %q: %s", res.Name, inProcessOnly[res.Name], res.Message)
		}
	}
	for _, c := range defects {
		switch c.defect {
		case "steer-discard", "not-persistent", "cancel-unproven", "resume-forgets", "double-complete":
		default:
			continue // needs the binary (or is shown by it well enough)
		}
		t.Run(c.defect, func(t *testing.T) {
			t.Parallel()
			opts := fast
			opts.Only = c.failing
			report := conformance.Check(context.Background(), conformance.Target{Backend: broken.New(c.defect), Env: env}, opts)
			checkFails(t, report, c.defect, c.failing, c.mentions)
		})
	}
}

// TestQuietLongTurnIsCancelledTwice: a backend whose long turn shows no
// output and starts no process (the echo backend sleeps in process) is
// not failed for it: cancel_bound proves the cancel with two turns
// cancelled at different ages, and passes.
func TestQuietLongTurnIsCancelledTwice(t *testing.T) {
	opts := fast
	opts.Only = []string{"cancel_bound"}
	report := conformance.Check(context.Background(), conformance.Target{
		Backend: echobackend.New(),
		CLI:     "echo",
		Command: "unused",
		Prompts: conformance.Prompts{Long: "SLEEP_MS=60000", Echo: conformance.EchoFull},
	}, opts)
	res, _ := report.Result("cancel_bound")
	if res.Status != conformance.StatusPass || !strings.Contains(res.Message, "two were cancelled") {
		t.Fatalf("cancel_bound %s: %s; want pass after two cancels", res.Status, res.Message)
	}
	t.Log(res.Message)
}
