package main

import (
	"path/filepath"
	"testing"

	"github.com/tthost/tthost/sdk/conformance"
)

// TestConformanceInProcess runs the conformance suite against the backend
// as a value, served in this test's own process over real gRPC
// (sdk/sdktest/inprocess): nothing to build, so it is the quick loop while
// a backend is being written. The checks that need a plugin process are
// reported unproven (skipped) here; TestConformance proves them against
// the binary.
func TestConformanceInProcess(t *testing.T) {
	standin, err := filepath.Abs("testdata/standin.bash")
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Target{
		Backend: backend{},
		Command: "bash --norc --noprofile",
		Env:     map[string]string{"BASH_ENV": standin},
		Prompts: conformance.Prompts{Echo: conformance.EchoFull, Steer: "CONFORMANCE_STEER"},
	})
}
