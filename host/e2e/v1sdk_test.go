package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// v1PassedChecks are the checks of `tthost plugin conformance` the echo
// plugin passed at e58b035 (that commit's tthost, `--long-prompt
// SLEEP_MS=60000 --echo full`). It failed the others then too: it accepts any resume id, writes
// no transcript and cannot fail a turn (resume, concurrent_isolation,
// errors_in_band); child_environment is newer than the plugin.
var v1PassedChecks = []string{
	"handshake_describe", "stdout_pollution", "open_close", "turn_event_order", "cancel_bound", "steer",
	"large_and_unicode", "no_process_after_close", "no_process_after_host_cancel", "no_process_after_host_kill",
}

// v1FailedChecks are the checks of e58b035's suite the echo plugin failed.
var v1FailedChecks = []string{"resume", "concurrent_isolation", "errors_in_band"}

// TestAPluginBuiltWithTheV1SDKServesOnTheNewHost: the echo plugin built
// with the SDK as it was at e58b035 (testdata/v1plugin, frozen) installs,
// lists with protocol 1, verifies, passes the conformance checks it passed
// then, and serves a Tinytown agent's turn through `tthost agent-loop`.
func TestAPluginBuiltWithTheV1SDKServesOnTheNewHost(t *testing.T) {
	e := newEnv(t)
	pluginDir := filepath.Join(e.dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.extraEnv = append(e.extraEnv, "TTHOST_PLUGIN_DIR="+pluginDir)
	e.cfg.Agent.Persistent = true
	e.cfg.AgentCLIs["echo"] = config.AgentCLI{Name: "echo", Command: "cat", Backend: "echo"}
	e.saveConfig()
	bin := buildV1Plugin(t)

	if p := e.tthost("", "plugin", "install", bin); p.wait(t, long) != 0 {
		t.Fatalf("install of the v1 plugin failed:\n%s", p.out.String())
	}

	// list: installed, active, checksum ok, protocol 1, the old SDK.
	var rows []listedPlugin
	out, code := e.tthostOutput(t, "plugin", "list", "--json")
	if code != 0 {
		t.Fatalf("plugin list exit %d:\n%s", code, out)
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("plugin list --json: %v\n%s", err, out)
	}
	i := slices.IndexFunc(rows, func(r listedPlugin) bool {
		return r.Name == "echo" && r.Source == "installed"
	})
	if i < 0 {
		t.Fatalf("plugin list does not show the installed echo plugin:\n%s", out)
	}
	row := rows[i]
	if row.Protocol != 1 || row.SDKVersion != "0.1.0" || row.Version != "1.2.3" || row.Checksum != "ok" || !row.Active || row.Problem != "" {
		t.Errorf("listed as %+v; want protocol 1, SDK 0.1.0, version 1.2.3, checksum ok, active, no problem", row)
	}
	if len(row.CLIs) == 0 || row.CLIs[0].Name != "echo" || !slices.Contains(row.CLIs[0].Capabilities, "persistent") {
		t.Errorf("listed CLIs %+v; want echo with persistent first", row.CLIs)
	}

	if p := e.tthost("", "plugin", "verify"); p.wait(t, long) != 0 {
		t.Errorf("verify failed:\n%s", p.out.String())
	} else if !strings.Contains(p.out.String(), filepath.Join(pluginDir, "echo")) {
		t.Errorf("verify does not list the installed plugin:\n%s", p.out.String())
	}

	// conformance, on the installed plugin by name (its recorded checksum
	// is verified): what passed at e58b035 passes.
	var report struct {
		Plugin struct {
			Name            string `json:"name"`
			ProtocolVersion int    `json:"protocol_version"`
		} `json:"plugin"`
		Checks []struct {
			Name    string `json:"name"`
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"checks"`
	}
	out, code = e.tthostOutput(t, "plugin", "conformance", "echo", "--json", "--long-prompt", "SLEEP_MS=60000", "--echo", "full")
	if code != 0 && code != 1 { // 1: a check failed
		t.Fatalf("plugin conformance exit %d:\n%s", code, out)
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("plugin conformance --json: %v\n%s", err, out)
	}
	if report.Plugin.Name != "echo" || report.Plugin.ProtocolVersion != 1 {
		t.Errorf("conformance ran against %+v; want echo, protocol 1", report.Plugin)
	}
	status := map[string]string{}
	for _, c := range report.Checks {
		status[c.Name] = c.Status
		t.Logf("conformance %-30s %s", c.Name, c.Status)
		if c.Status != "pass" && slices.Contains(v1PassedChecks, c.Name) {
			t.Errorf("conformance check %s, which the v1 plugin passed at e58b035, now %s: %s", c.Name, c.Status, c.Message)
		}
	}
	for _, name := range append(slices.Clone(v1PassedChecks), v1FailedChecks...) {
		if _, ok := status[name]; !ok {
			t.Errorf("conformance no longer runs check %s of e58b035", name)
		}
	}

	// A Tinytown agent whose CLI names the plugin in tinytown.toml: one
	// message in, one turn served by the plugin, its events in Redis.
	a, err := e.store.CreateAgent(e.ctx(), town.AgentSpec{Name: "v1echoer", CLI: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	const text = "HELLO_FROM_A_V1_SDK_PLUGIN"
	e.send(a.ID, text)
	if p := e.agentLoop(a, 1); p.wait(t, long) != 0 {
		t.Fatalf("agent-loop failed:\n%s", p.out.String())
	}
	ev := e.waitEvent(a.ID, long, "backend choice", func(ev *town.TownEvent) bool { return ev.Scope == "tthost.backend_selected" })
	if d := eventDetail(t, ev); !strings.Contains(ev.Message, "the echo backend, as [agent_clis.echo] backend says") ||
		d.Backend != "echo" || !d.Persistent || d.Fallback {
		t.Errorf("backend choice %q %+v; want the v1 echo plugin, persistent, as configured", ev.Message, d)
	}
	done := e.waitEvent(a.ID, long, "the turn completed by the v1 plugin", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentTurnCompleted
	})
	turn := eventDetail(t, done)
	if turn.Status != "completed" || turn.TurnID == "" {
		t.Errorf("turn completion %q %+v; want a completed turn", done.Message, turn)
	}
	// The echo plugin streams the prompt that carried the message back and
	// says how long it was.
	var n int
	if _, after, ok := strings.Cut(done.Message, "echoed "); !ok {
		t.Errorf("turn completed %q; want the echo plugin's \"echoed N bytes\"", done.Message)
	} else if _, err := fmt.Sscanf(after, "%d bytes", &n); err != nil || n <= len(text) {
		t.Errorf("turn completed %q; want the echo plugin's \"echoed N bytes\" for a prompt holding the message", done.Message)
	}
	delta := e.waitEvent(a.ID, long, "the echoed prompt", func(ev *town.TownEvent) bool {
		return ev.Type == town.EventAgentAssistantDelta
	})
	if d := eventDetail(t, delta); d.TurnID != turn.TurnID || d.Text == "" {
		t.Errorf("assistant delta %+v; want the echoed prompt of turn %s", d, turn.TurnID)
	}
	if got := e.getAgent(a.ID); got.RoundsCompleted != 1 || got.State != town.StateStopped {
		t.Errorf("rounds %d state %s; want 1, stopped", got.RoundsCompleted, got.State)
	}
	if n, m := e.inboxLen(a.ID), e.inFlightLen(a.ID); n != 0 || m != 0 {
		t.Errorf("inbox %d, in flight %d after the turn; want 0, 0", n, m)
	}
}

// tthostDetail is the part of an event's "tthost" field the test reads.
type tthostDetail struct {
	Backend    string `json:"backend"`
	Persistent bool   `json:"persistent"`
	Fallback   bool   `json:"fallback"`
	TurnID     string `json:"turn_id"`
	Status     string `json:"status"`
	Text       string `json:"text"`
}

func eventDetail(t *testing.T, ev *town.TownEvent) tthostDetail {
	t.Helper()
	var d tthostDetail
	raw, ok := ev.Extra["tthost"].(json.RawMessage)
	if !ok {
		t.Fatalf("event %s has no tthost detail: %+v", ev.Type, ev.Extra)
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("event %s: tthost detail %s: %v", ev.Type, raw, err)
	}
	return d
}

// TestTheBackendProtocolIsStillVersion1: the SDK speaks protocol 1, the
// frozen v1 SDK spoke protocol 1, and the host side (sdk/client) completes
// the handshake with a v1 plugin on version 1.
func TestTheBackendProtocolIsStillVersion1(t *testing.T) {
	if sdk.ProtocolVersion != 1 {
		t.Errorf("sdk.ProtocolVersion = %d: the wire protocol changed major version; plugins built with the v1 SDK "+
			"must still be served (keep version 1 in the host's versions)", sdk.ProtocolVersion)
	}
	types, err := os.ReadFile(testdataPath(t, filepath.Join("v1plugin", "sdk", "types.go")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(types, []byte("\nconst ProtocolVersion = 1\n")) {
		t.Errorf("the frozen v1 SDK does not declare protocol 1: testdata/v1plugin was edited")
	}

	procs := sdktest.TrackProcesses(t)
	bin := buildV1Plugin(t)
	ctx, cancel := context.WithTimeout(t.Context(), long)
	defer cancel()
	p, err := client.Launch(ctx, client.Config{
		Path: bin, Checksum: sdktest.SHA256File(t, bin), Env: []string{procs.Env()}, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatalf("the host side refuses the v1 plugin: %v", err)
	}
	defer func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	if d := p.Description(); d.ProtocolVersion != 1 || d.SDKVersion != "0.1.0" || d.Name != "echo" {
		t.Errorf("the v1 plugin describes itself as %s, protocol %d, SDK %s; want echo, 1, 0.1.0", d.Name, d.ProtocolVersion, d.SDKVersion)
	}
}

// listedPlugin is the part of a `tthost plugin list --json` row the test reads.
type listedPlugin struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Protocol   int    `json:"protocol"`
	SDKVersion string `json:"sdk_version"`
	Source     string `json:"source"`
	Checksum   string `json:"checksum"`
	Active     bool   `json:"active"`
	Problem    string `json:"problem"`
	CLIs       []struct {
		Name         string   `json:"name"`
		Capabilities []string `json:"capabilities"`
	} `json:"clis"`
}

var v1Plugin struct {
	sync.Mutex
	path string
}

// buildV1Plugin builds the echo plugin of the frozen v1 SDK
// (testdata/v1plugin) once per test process and returns the binary. The
// module is copied to a temp dir, outside this module, and built there by
// sdktest.Build, as every plugin of these tests is: -trimpath, the release
// flags, and -race when the tests run with it.
func buildV1Plugin(t *testing.T) string {
	t.Helper()
	v1Plugin.Lock()
	defer v1Plugin.Unlock()
	if v1Plugin.path != "" {
		return v1Plugin.path
	}
	mod := t.TempDir()
	if err := os.CopyFS(mod, os.DirFS(testdataPath(t, "v1plugin"))); err != nil {
		t.Fatalf("copy the v1 plugin's module: %v", err)
	}
	var bin string
	// A subtest, so that the working directory the go command builds in is
	// restored when the build is done.
	t.Run("build the v1 plugin", func(t *testing.T) {
		t.Chdir(mod)
		t.Setenv("GOWORK", "off")
		bin = sdktest.Build(t, "./sdk/internal/testplugins/echo", "v1plugin/tthost-backend-echo")
	})
	if bin == "" {
		t.Fatal("the v1 plugin was not built")
	}
	v1Plugin.path = bin
	return bin
}

// tthostOutput runs tthost like e.tthost and returns its stdout alone (for
// --json) and its exit code; stderr is logged when the test fails.
func (e *env) tthostOutput(t *testing.T, args ...string) (stdout string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "tthost"), append([]string{"--town", e.dir}, args...)...)
	cmd.Env = append(append(e.procs.Environ(), "REDIS_URL="+e.redis.URL, "E2E_DIR="+e.work), e.extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tthost %s stderr:\n%s", strings.Join(args, " "), se.String())
		}
	})
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("tthost %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("tthost %s did not finish within 5m:\n%s%s", strings.Join(args, " "), so.String(), se.String())
	}
	return so.String(), code
}
