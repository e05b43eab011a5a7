package conformance_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/conformance"
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
// which echo the suite's prompts, sleep and fail on its markers.
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
		Prompts:   conformance.Prompts{Echo: conformance.EchoFull},
	}, opts)
}

// TestBrokenPlugin: the suite passes the broken plugin without defects and
// names the checks each defect breaks.
func TestBrokenPlugin(t *testing.T) {
	bin := sdktest.Build(t, brokenPkg, "tthost-backend-broken")
	fast := conformance.Options{CancelBound: time.Second, ExitBound: 3 * time.Second, Timeout: 30 * time.Second}
	cases := []struct {
		defect   string
		failing  []string
		mentions string
	}{
		{"", nil, ""},
		{"double-complete", []string{"turn_event_order"}, "a second TurnCompleted"},
		{"leak-child", []string{"no_process_after_close", "no_process_after_host_cancel", "no_process_after_host_kill"}, "still"},
		{"slow-cancel", []string{"cancel_bound"}, "cancel bound"},
		{"silent-failure", []string{"errors_in_band"}, "want failed"},
		{"leak-env", []string{"child_environment"}, "TTHOST_BACKEND_PLUGIN"},
	}
	for _, c := range cases {
		name := c.defect
		if name == "" {
			name = "no defect"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			procs := sdktest.TrackProcesses(t)
			report := conformance.Check(context.Background(), conformance.Target{
				Path:      bin,
				PluginEnv: append(pluginEnv(procs), "BROKEN_PLUGIN_DEFECTS="+c.defect),
			}, fast)
			failed := report.Failed()
			if c.defect == "" {
				if !report.OK() {
					for _, name := range failed {
						res, _ := report.Result(name)
						t.Errorf("%s failed on a good plugin: %s", name, res.Message)
					}
				}
				return
			}
			for _, want := range c.failing {
				res, _ := report.Result(want)
				if res.Status != conformance.StatusFail {
					t.Errorf("defect %s: check %s %s, want fail (failed: %v)", c.defect, want, res.Status, failed)
				} else if !strings.Contains(res.Message, c.mentions) || !strings.Contains(res.Message, "rule:") {
					t.Errorf("defect %s: check %s's message does not say %q and the rule:\n%s", c.defect, want, c.mentions, res.Message)
				}
			}
			if report.OK() {
				t.Errorf("defect %s: the report is OK", c.defect)
			}
			t.Logf("defect %s fails %v", c.defect, failed)
		})
	}
}
