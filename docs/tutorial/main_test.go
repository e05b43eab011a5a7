package main

import (
	"testing"

	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// TestConformance builds this plugin and proves it with tthost's
// conformance suite. The suite's stand-in CLI echoes each prompt, sleeps
// when asked to run long and fails when asked to fail.
func TestConformance(t *testing.T) {
	bin := sdktest.Build(t, ".", "tthost-backend-mycli")
	conformance.Run(t, conformance.Target{Path: bin, Command: conformance.StandInCommand})
}
