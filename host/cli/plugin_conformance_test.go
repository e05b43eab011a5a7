package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk/conformance/suite"
	"github.com/tthost/tthost/sdk/sdktest"
)

// conformanceTown is a town without Redis whose tthost executable sits in
// a built-in directory holding the one-shot plugin and its manifest.
func conformanceTown(t *testing.T) *testTown {
	t.Helper()
	tt := newBareTown(t)
	builtin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(builtin, 0o755); err != nil {
		t.Fatal(err)
	}
	oneshot := sdktest.Build(t, "github.com/tthost/tthost/plugins/oneshot", "plugins/tthost-backend-oneshot")
	sdktest.CopyFile(t, oneshot, filepath.Join(builtin, "tthost-backend-oneshot"), 0o755)
	sdktest.CopyFile(t, oneshot, filepath.Join(builtin, "tthost-backend-unrecorded"), 0o755)
	sdktest.WriteChecksums(t, builtin, pluginstore.ChecksumFile, "tthost-backend-oneshot")
	tt.exe = filepath.Join(builtin, "tthost")
	tt.env[PluginDirEnv] = filepath.Join(t.TempDir(), "plugins")
	tt.procEnv = append(tt.procEnv, "GORACE=atexit_sleep_ms=0")
	return tt
}

func brokenPlugin(t *testing.T) string {
	return sdktest.Build(t, "github.com/tthost/tthost/sdk/conformance/internal/brokenplugin", "plugins/tthost-backend-broken")
}

func TestPluginConformanceProvesTheOneShotBackendByName(t *testing.T) {
	tt := conformanceTown(t)
	out := tt.run("plugin", "conformance", "oneshot").ok(t)
	mustContain(t, out,
		"Conformance of "+filepath.Join(filepath.Dir(tt.exe), "tthost-backend-oneshot"),
		`oneshot dev (protocol 1), CLI "conformance-cli" (capabilities: interrupt)`,
		"ok    handshake_describe", "ok    turn_event_order", "ok    child_environment", "ok    no_process_after_host_kill",
		"--    steer", `not declared: the plugin does not declare "steer"`, "--    persistent",
		"15 checks: 12 passed, 0 failed, 3 not declared, 0 unproven")
}

func TestPluginConformanceReportsAFailingPluginAsJSON(t *testing.T) {
	tt := conformanceTown(t)
	tt.procEnv = append(tt.procEnv, "BROKEN_PLUGIN_DEFECTS=double-complete")
	r := tt.run("plugin", "conformance", brokenPlugin(t), "--check", "handshake_describe,turn_event_order", "--json")
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1 (err %v)\n%s", r.code, r.err, r.out)
	}
	r.fails(t, "1 of 2 checks failed: turn_event_order")
	var report struct {
		Plugin  suite.PluginInfo `json:"plugin"`
		Checks  []map[string]any `json:"checks"`
		Summary suite.Summary    `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.out), &report); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.out)
	}
	if report.Plugin.Name != "broken" || report.Plugin.CLI != "stand-in" || len(report.Checks) != 2 ||
		report.Summary != (suite.Summary{Passed: 1, Failed: 1}) {
		t.Fatalf("report %+v", report)
	}
	failed := report.Checks[1]
	if failed["name"] != "turn_event_order" || failed["status"] != "fail" || failed["duration_ms"] == nil {
		t.Fatalf("second check %v", failed)
	}
	mustContain(t, failed["message"].(string), "a second TurnCompleted", "rule: every started turn ends with exactly one TurnCompleted")
}

func TestPluginConformancePrintsFailuresForPeople(t *testing.T) {
	tt := conformanceTown(t)
	tt.procEnv = append(tt.procEnv, "BROKEN_PLUGIN_DEFECTS=silent-failure")
	r := tt.run("plugin", "conformance", brokenPlugin(t), "--check", "errors_in_band")
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1 (err %v)\n%s", r.code, r.err, r.out)
	}
	mustContain(t, r.out, "FAIL  errors_in_band", "ended completed; want failed", "rule: a failed turn ends with TurnCompleted FAILED",
		"1 checks: 0 passed, 1 failed, 0 not declared, 0 unproven")
}

func TestPluginConformanceRefusesBadArguments(t *testing.T) {
	tt := conformanceTown(t)
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"an unknown plugin name", []string{"nosuch"}, 1, []string{`no plugin named "nosuch"`, "found: oneshot", "give a path"}},
		{"a plugin without a recorded checksum", []string{"unrecorded"}, 1, []string{`plugin "unrecorded"`, "no checksum recorded", "test the binary by its path"}},
		{"a missing binary", []string{"./nosuch"}, 1, []string{"cannot read the plugin binary"}},
		{"an --env without =", []string{"oneshot", "--env", "FOO"}, 2, []string{`--env "FOO": want KEY=VALUE`}},
		{"an unknown echo mode", []string{"oneshot", "--echo", "loud"}, 2, []string{`--echo "loud"`}},
		{"an unknown steer echo mode", []string{"oneshot", "--steer-echo", "loud"}, 2, []string{`--steer-echo "loud"`}},
		{"an unknown check", []string{"oneshot", "--check", "nosuch"}, 2, []string{`--check "nosuch" is not a check`, "turn_event_order"}},
		{"no plugin", nil, 2, []string{"needs a plugin NAME or PATH"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tt.run(append([]string{"plugin", "conformance"}, c.args...)...)
			if r.code != c.code {
				t.Errorf("exit code %d, want %d (err %v)", r.code, c.code, r.err)
			}
			r.fails(t, c.want...)
		})
	}
}

// TestPluginConformanceFlagsAreDocumented: every flag of the command is in
// its --help and in README.md's row for it.
func TestPluginConformanceFlagsAreDocumented(t *testing.T) {
	tt := conformanceTown(t)
	help := tt.run("plugin", "conformance", "--help").ok(t)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `plugin conformance ") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("README.md has no row for `plugin conformance` in its table of commands")
	}
	NewCmdPluginConformance(&Factory{}, nil).Flags().VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(help, "--"+f.Name+" ") {
			t.Errorf("--help does not show --%s", f.Name)
		}
		if !strings.Contains(row, "--"+f.Name+" ") && !strings.Contains(row, "--"+f.Name+"]") {
			t.Errorf("README.md's row for plugin conformance lacks --%s:\n%s", f.Name, row)
		}
	})
	for _, c := range suite.Checks() {
		if !strings.Contains(help, c.Name) {
			t.Errorf("--help does not list check %s", c.Name)
		}
	}
}
