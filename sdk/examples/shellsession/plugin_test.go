package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

// These tests run the built plugin binary the way tthost does.

func buildPlugin(t *testing.T) string {
	return sdktest.Build(t, ".", "tthost-backend-"+name)
}

func TestThePluginServesTheHost(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := buildPlugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := client.Launch(ctx, client.Config{
		Path:     bin,
		Checksum: sdktest.SHA256File(t, bin),
		// The marker proves below that nothing is left; GORACE spares a
		// race-enabled build a second's sleep at exit.
		Env: []string{procs.Env(), "GORACE=atexit_sleep_ms=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if d := p.Description(); d.Name != name || len(d.CLIs) != 1 || !d.CLIs[0].Has(sdk.CapSteer) {
		t.Errorf("description %+v", d)
	}
	s, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: cliName, Command: "sh", Workdir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "x=42; echo \"x is $x\""}); err != nil {
		t.Fatal(err)
	}
	var out string
	for done := false; !done; {
		select {
		case ev := <-s.Events():
			switch ev.Kind {
			case sdk.EventAssistantDelta:
				out += ev.Text
			case sdk.EventTurnCompleted:
				if ev.Completed.Status != sdk.StatusCompleted || out != "x is 42\n" {
					t.Errorf("turn %+v, output %q", ev.Completed, out)
				}
				done = true
			}
		case <-ctx.Done():
			t.Fatalf("no TurnCompleted; output so far %q", out)
		}
	}
	// Stopping the plugin with a session open closes it: the shell goes too.
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if alive := procs.Alive(); len(alive) > 0 {
		t.Errorf("processes alive after Stop: %v", alive)
	}
}

// TestConformance proves the plugin with tthost's conformance suite. The
// suite's prompts are text; testdata/standin.bash makes bash answer them
// the way the suite's stand-in CLI does.
func TestConformance(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("the conformance run needs bash (Debian: apt-get install bash)")
	}
	standin, err := filepath.Abs("testdata/standin.bash")
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Target{
		Path:    buildPlugin(t),
		Command: "bash --norc --noprofile",
		Env:     map[string]string{"BASH_ENV": standin},
		Prompts: conformance.Prompts{Echo: conformance.EchoFull, Steer: "CONFORMANCE_STEER"},
	})
}
