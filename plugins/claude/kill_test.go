package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

const claudePkg = "github.com/tthost/tthost/plugins/claude"

// TestRealClaudePluginKilled: a kill -9 of the plugin during a turn of the
// real claude leaves no process behind.
func TestRealClaudePluginKilled(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	c := newRealClaude(t, nil)
	path := sdktest.Build(t, claudePkg, "tthost-backend-claude")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := client.Launch(ctx, client.Config{
		Path: path, Checksum: sdktest.SHA256File(t, path), HostVersion: "test",
		Env: []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}, Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	env := map[string]string{sdktest.MarkerEnv: procs.Marker()}
	for k, v := range c.env {
		env[k] = v
	}
	sess, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: cliClaude, Command: c.cmd, Workdir: t.TempDir(), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	output := make(chan string, 1)
	go func() {
		var b strings.Builder
		for e := range sess.Events() {
			if e.Kind == sdk.EventAssistantDelta {
				b.WriteString(e.Text)
				if strings.Contains(b.String(), "tick 2 ") {
					output <- b.String()
					return
				}
			}
		}
	}()
	if _, err := sess.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: claudetest.MarkSlowStream}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-output:
	case <-ctx.Done():
		t.Fatal("the long turn never streamed")
	}
	if n := len(procs.Alive()); n < 2 {
		t.Fatalf("%d processes alive, want the plugin and claude", n)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	assertGone(t, procs)
}
