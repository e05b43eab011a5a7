package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

// TestCLIInATurnSeesNoPluginInternalsAndTthostPrints: a one-shot turn's
// CLI gets the agent's variables and none of the plugin's handshake, and a
// tthost it runs prints on stdout, even with a leaked cookie in its
// environment (issue 7: `out=$(tthost task list --json)` captured nothing).
func TestCLIInATurnSeesNoPluginInternalsAndTthostPrints(t *testing.T) {
	e := newEnv(t)
	a := e.agent("scripter")
	task, err := e.store.CreateTask(e.ctx(), town.TaskSpec{Description: "a task the agent lists", AssignedTo: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.send(a.ID, "DUMP_ENV for the test")
	p := e.agentLoop(a, 1)
	if code := p.wait(t, long); code != 0 {
		t.Fatalf("agent-loop exited %d:\n%s", code, p.out.String())
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(e.work, name))
		if err != nil {
			t.Fatalf("the CLI did not record %s: %v; events:\n%s", name, err, e.dumpEvents(a.ID))
		}
		return string(b)
	}

	env := strings.Split(read("env.txt"), "\n")
	for _, kv := range env {
		if name, _, ok := strings.Cut(kv, "="); ok && sdk.IsInternalEnv(name) {
			t.Errorf("the CLI sees the plugin's %s", kv)
		}
	}
	for _, want := range []string{"TINYTOWN_AGENT_ID=" + a.ID, "TINYTOWN_AGENT_NAME=scripter"} {
		if !slices.Contains(env, want) {
			t.Errorf("the CLI's environment lacks %s", want)
		}
	}
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TTHOST_PLUGIN_INSTANCE=") }) {
		t.Errorf("the CLI's environment lacks the plugin instance token the host's sweep needs")
	}

	var tasks []struct {
		ID string `json:"id"`
	}
	out := read("tasks.json")
	if err := json.Unmarshal([]byte(out), &tasks); err != nil {
		t.Fatalf("`tthost task list --json` in the turn printed %q on stdout (stderr %q): %v", out, read("tasks.err"), err)
	}
	if len(tasks) != 1 || tasks[0].ID != task.ID {
		t.Errorf("`tthost task list --json` in the turn does not list just task %s: %s", task.ID, out)
	}
	if v := read("version.txt"); !strings.HasPrefix(v, "tthost ") {
		t.Errorf("out=$(tthost version) in the turn captured %q", v)
	}
	if v := read("leaked-version.txt"); !strings.HasPrefix(v, "tthost ") {
		t.Errorf("tthost version with a leaked cookie printed %q on stdout; the stdout guard acted outside a plugin", v)
	}
}
