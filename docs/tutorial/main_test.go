package main

import (
	"testing"

	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// TestConformance builds this plugin and mycli, the REPL it drives (a
// stand-in in ./mycli), and proves the plugin with tthost's conformance
// suite. mycli echoes a prompt (sent as one line: its first line comes
// back), thinks until interrupted on CONFORMANCE_SLEEP and fails on
// CONFORMANCE_FAIL, the suite's default prompts. A steered line is read
// once the running answer ends, so the steer check's turn is one that ends
// by itself (CONFORMANCE_STEER, 3 s).
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Target{
		Path:    sdktest.Build(t, ".", "tthost-backend-mycli"),
		Command: sdktest.Build(t, "./mycli", "mycli"),
		Prompts: conformance.Prompts{Echo: conformance.EchoFirstLine, Steer: "CONFORMANCE_STEER"},
	})
}
