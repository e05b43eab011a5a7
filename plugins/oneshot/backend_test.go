package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	d, err := newBackend().Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "oneshot" || d.Version != buildinfo.Version || d.Summary == "" || strings.Contains(d.Summary, "\n") {
		t.Errorf("Describe = name %q version %q summary %q", d.Name, d.Version, d.Summary)
	}
	cli, ok := d.Lookup("some-cli-nobody-registered")
	if !ok || cli.Name != sdk.AnyCLI || !slices.Equal(cli.Capabilities, []sdk.Capability{sdk.CapInterrupt}) {
		t.Errorf("CLIs = %+v, want only %q with [interrupt]", d.CLIs, sdk.AnyCLI)
	}

	var schema struct {
		Type       string
		Properties map[string]struct {
			Type    string
			Enum    []string
			Default string
		}
	}
	if err := json.Unmarshal([]byte(d.OptionsSchema), &schema); err != nil {
		t.Fatalf("OptionsSchema is not JSON: %v", err)
	}
	pm := schema.Properties[optPromptMode]
	var want []string
	for _, m := range promptModes {
		want = append(want, string(m))
	}
	if schema.Type != "object" || pm.Type != "string" || pm.Default != "auto" || !slices.Equal(pm.Enum, want) {
		t.Errorf("OptionsSchema prompt_mode = %+v, want string enum %v default auto", pm, want)
	}
}

func TestOpenSessionRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := sdk.SessionConfig{CLIName: "claude", Command: "claude -p", Workdir: dir}
	tests := []struct {
		name   string
		change func(*sdk.SessionConfig)
		msg    string
	}{
		{"an empty command is refused", func(c *sdk.SessionConfig) { c.Command = "" }, "command"},
		{"a blank command is refused", func(c *sdk.SessionConfig) { c.Command = " \n\t" }, "command"},
		{"an empty workdir is refused", func(c *sdk.SessionConfig) { c.Workdir = "" }, "workdir"},
		{"a missing workdir is refused", func(c *sdk.SessionConfig) { c.Workdir = filepath.Join(dir, "missing") }, "no such file"},
		{"a workdir that is a file is refused", func(c *sdk.SessionConfig) { c.Workdir = file }, "not a directory"},
		{"an unknown prompt mode is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{"prompt_mode": "carrier-pigeon"} }, "carrier-pigeon"},
		{"an unknown option is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{"prompt-mode": "stdin"} }, "prompt-mode"},
		{"an env name with = is refused", func(c *sdk.SessionConfig) { c.Env = map[string]string{"A=B": "c"} }, "A=B"},
		{"an env value with NUL is refused", func(c *sdk.SessionConfig) { c.Env = map[string]string{"A": "b\x00c"} }, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			rec := newRecorder(t)
			s, err := newBackend().OpenSession(context.Background(), cfg, rec)
			if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("OpenSession = %v, %v; want ErrInvalidConfig mentioning %q", s, err, tt.msg)
			}
			if evs := rec.Events(); len(evs) != 0 {
				t.Errorf("a refused session emitted events:\n%s", sdktest.Dump(evs))
			}
		})
	}
}

func TestOpenSessionIsReadyAndAwaitsInput(t *testing.T) {
	t.Parallel()
	procs := sdktest.TrackProcesses(t)
	_, rec := openSession(t, procs, openOpts{command: "cat"})
	evs := rec.Events()
	if !slices.Equal(sdktest.Kinds(evs), []sdk.EventKind{sdk.EventSessionReady, sdk.EventAwaitingInput}) {
		t.Fatalf("events = %v, want session_ready, awaiting_input", sdktest.Kinds(evs))
	}
	if r := evs[0].Ready; r.RuntimeSessionID != "" || r.Resumed || r.ContextLostReason != "" {
		t.Errorf("SessionReady = %+v, want no runtime session id", *r)
	}
}

func TestOpenSessionWithResumeIDReportsContextLost(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	s, err := newBackend().OpenSession(context.Background(),
		sdk.SessionConfig{CLIName: "claude", Command: "cat", Workdir: t.TempDir(), ResumeID: "thread-1"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), sdk.CloseImmediate)
	if r := rec.Events()[0].Ready; r.Resumed || r.ContextLostReason == "" {
		t.Errorf("SessionReady = %+v, want not resumed with a reason", *r)
	}
}
