package main

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	if d.Name != "codex" || d.Version != buildinfo.Version || d.Summary == "" || strings.Contains(d.Summary, "\n") {
		t.Errorf("Describe = name %q version %q summary %q", d.Name, d.Version, d.Summary)
	}
	want := []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt, sdk.CapResume, sdk.CapApprovals, sdk.CapUsage}
	for _, name := range []string{cliCodex, cliCodexMini} {
		cli, ok := d.Lookup(name)
		if !ok || cli.Name != name || !slices.Equal(cli.Capabilities, want) {
			t.Errorf("CLI %s = %+v, want %v", name, cli, want)
		}
	}
	if _, ok := d.Lookup("claude"); ok || len(d.CLIs) != 2 {
		t.Errorf("CLIs = %+v, want only codex and codex-mini", d.CLIs)
	}

	var schema struct {
		Type                 string
		AdditionalProperties bool
		Properties           map[string]struct {
			Type        string
			Enum        []string
			Default     *string
			Description string
		}
	}
	if err := json.Unmarshal([]byte(d.OptionsSchema), &schema); err != nil {
		t.Fatalf("OptionsSchema is not JSON: %v", err)
	}
	if schema.Type != "object" || schema.AdditionalProperties {
		t.Errorf("schema type %q additionalProperties %v, want a closed object", schema.Type, schema.AdditionalProperties)
	}
	if got := slices.Sorted(maps.Keys(schema.Properties)); !slices.Equal(got, optionKeys()) {
		t.Errorf("schema keys %v, want the options %v", got, optionKeys())
	}
	defaults := map[string]string{
		optCodexHome: "", optApprovalPolicy: "never", optSandbox: "danger-full-access",
		optCommandApproval: "accept", optFileChangeApproval: "accept", optPermissionsApproval: "grant",
		optApprovalTimeout: "30000", optRequestTimeout: "30000",
	}
	for k, p := range schema.Properties {
		if p.Type != "string" || p.Description == "" {
			t.Errorf("option %s: type %q, description %q", k, p.Type, p.Description)
		}
		if want, ok := defaults[k]; ok && (p.Default == nil || *p.Default != want) {
			t.Errorf("option %s: default %v, want %q", k, p.Default, want)
		}
	}
	if !strings.Contains(schema.Properties[optCodexHome].Description, "same CODEX_HOME") {
		t.Errorf("codex_home does not say that resume needs the same CODEX_HOME")
	}
	enums := map[string][]string{
		optApprovalPolicy: approvalPolicies, optSandbox: sandboxModes, optCommandApproval: reviewDecisions,
		optFileChangeApproval: reviewDecisions, optPermissionsApproval: grantDecisions,
	}
	for k, want := range enums {
		if got := schema.Properties[k].Enum; !slices.Equal(got, want) {
			t.Errorf("option %s: enum %v, want %v", k, got, want)
		}
	}
}

func TestOpenSessionRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := sdk.SessionConfig{CLIName: "codex", Command: "codex exec", Workdir: dir}
	tests := []struct {
		name   string
		change func(*sdk.SessionConfig)
		msg    string
	}{
		{"another CLI is refused", func(c *sdk.SessionConfig) { c.CLIName = "claude" }, "claude"},
		{"an empty command is refused", func(c *sdk.SessionConfig) { c.Command = " " }, "command"},
		{"an unparsable command is refused", func(c *sdk.SessionConfig) { c.Command = "codex -c 'a" }, "quote"},
		{"an empty workdir is refused", func(c *sdk.SessionConfig) { c.Workdir = "" }, "workdir"},
		{"a workdir that is a file is refused", func(c *sdk.SessionConfig) { c.Workdir = file }, "not a directory"},
		{"an unknown option is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{"approval-policy": "never"} }, "approval-policy"},
		{"an unknown approval policy is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{optApprovalPolicy: "always"} }, "always"},
		{"an unknown sandbox is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{optSandbox: "dangerFullAccess"} }, "dangerFullAccess"},
		{"an unknown decision is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{optCommandApproval: "approve"} }, "approve"},
		{"an unknown grant is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{optPermissionsApproval: "accept"} }, "accept"},
		{"a zero timeout is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{optRequestTimeout: "0"} }, "request_timeout_ms"},
		{"a timeout in words is refused", func(c *sdk.SessionConfig) { c.Options = map[string]string{optApprovalTimeout: "30s"} }, "30s"},
		{"an env name with = is refused", func(c *sdk.SessionConfig) { c.Env = map[string]string{"A=B": "c"} }, "A=B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
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

func TestOptionsDefaultsAndValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := validate(sdk.SessionConfig{CLIName: "codex", Command: "codex", Workdir: dir, LogDir: "/logs", AgentName: "a/b"})
	if err != nil {
		t.Fatal(err)
	}
	if s.approvalPolicy != "never" || s.sandbox != "danger-full-access" || s.commandDecision != "accept" ||
		s.fileDecision != "accept" || s.permissions != "grant" || s.approvalTimeout != 30*time.Second ||
		s.requestTimeout != 30*time.Second || s.model != "" || s.effort != "" || s.codexHome != "" {
		t.Errorf("defaults = %+v", s)
	}
	if s.logPath != "/logs/a_b.codex.log" {
		t.Errorf("log path = %q", s.logPath)
	}
	s, err = validate(sdk.SessionConfig{CLIName: "codex", Command: "codex", Workdir: dir, Options: map[string]string{
		optCodexHome: "codex-home", optRequestTimeout: "1500", optApprovalTimeout: "20",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if s.codexHome != filepath.Join(dir, "codex-home") || s.requestTimeout != 1500*time.Millisecond || s.approvalTimeout != 20*time.Millisecond {
		t.Errorf("settings = %+v", s)
	}
	if !slices.Contains(s.env, "CODEX_HOME="+filepath.Join(dir, "codex-home")) {
		t.Errorf("env lacks CODEX_HOME")
	}
}

// TestAppServerEnvironmentLacksThePluginsInternals: codex app-server does
// not inherit the handshake the host gives the plugin process (set here on
// the test process), and gets the session's, the command's and
// CODEX_HOME's variables in that order of precedence. Not parallel: it
// changes the process's environment.
func TestAppServerEnvironmentLacksThePluginsInternals(t *testing.T) {
	t.Setenv("TTHOST_BACKEND_PLUGIN", "cookie")
	t.Setenv("PLUGIN_CLIENT_CERT", "cert")
	t.Setenv("TTHOST_PLUGIN_CLI", "codex")
	s, err := validate(sdk.SessionConfig{
		CLIName: "codex", Command: "RUST_LOG=warn codex exec", Workdir: t.TempDir(),
		Env:     map[string]string{"TINYTOWN_AGENT_ID": "a1", "RUST_LOG": "info"},
		Options: map[string]string{optCodexHome: "/codex-home"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range s.env {
		if name, _, _ := strings.Cut(kv, "="); sdk.IsInternalEnv(name) {
			t.Errorf("app-server gets the plugin's %s", kv)
		}
	}
	if !slices.Contains(s.env, "TINYTOWN_AGENT_ID=a1") {
		t.Errorf("env lacks the session's TINYTOWN_AGENT_ID: %q", s.env)
	}
	if tail := s.env[max(len(s.env)-2, 0):]; !slices.Equal(tail, []string{"RUST_LOG=warn", "CODEX_HOME=/codex-home"}) {
		t.Errorf("env ends %q; want the command's assignment, then CODEX_HOME, after the session's", tail)
	}
}
