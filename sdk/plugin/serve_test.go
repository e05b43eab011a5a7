package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(fakeHostEnv); path != "" {
		os.Exit(runFakeHost(path))
	}
	sdktest.RunMain(m)
}

// runDirect runs a test plugin by hand, as an author would: without the
// host's handshake cookie.
func runDirect(t *testing.T, plugin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, "github.com/tthost/tthost/sdk/internal/testplugins/"+plugin, "tthost-backend-"+plugin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// A plugin built with -race would sleep a second at exit.
	cmd.Env = append(procs.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", plugin, err)
	}
	return out.String(), errOut.String(), code
}

func TestDescribeFlagPrintsJSON(t *testing.T) {
	// chatty prints in init and main: with --describe, stdout must still
	// hold nothing but the JSON.
	for _, plugin := range []string{"echo", "chatty"} {
		t.Run(plugin, func(t *testing.T) {
			stdout, stderr, code := runDirect(t, plugin, "--describe")
			if code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
			}
			var d struct {
				Name            string `json:"name"`
				Version         string `json:"version"`
				SDKVersion      string `json:"sdk_version"`
				ProtocolVersion int    `json:"protocol_version"`
				CLIs            []struct {
					Name         string   `json:"name"`
					Capabilities []string `json:"capabilities"`
				} `json:"clis"`
			}
			if err := json.Unmarshal([]byte(stdout), &d); err != nil {
				t.Fatalf("stdout is not JSON (%v):\n%s", err, stdout)
			}
			if d.Name != "echo" || d.Version != "1.2.3" || d.SDKVersion != sdk.Version ||
				d.ProtocolVersion != sdk.ProtocolVersion || len(d.CLIs) != 2 || d.CLIs[0].Name != "echo" ||
				strings.Join(d.CLIs[0].Capabilities, ",") != "persistent,steer,interrupt,resume" {
				t.Errorf("unexpected description: %+v", d)
			}
			if plugin == "chatty" && !strings.Contains(stderr, "hello from chatty init") {
				t.Errorf("chatty's stray output should be on stderr; stderr:\n%s", stderr)
			}
		})
	}
}

func TestRunByHandExplainsItself(t *testing.T) {
	stdout, stderr, code := runDirect(t, "echo")
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("printed to stdout: %q", stdout)
	}
	for _, want := range []string{"is a tthost backend plugin", "tthost starts it", "--describe"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("message lacks %q:\n%s", want, stderr)
		}
	}
}
