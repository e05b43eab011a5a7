package main

import (
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/conformance"
	"github.com/tthost/tthost/sdk/sdktest"
)

// The conformance suite against the one-shot backend, as CI runs it.

// opts gives turns room under -race on a small machine.
var conformanceOpts = conformance.Options{Timeout: 90 * time.Second}

// conformanceEnv marks the plugin's processes for the test's own leak check
// (beside the suite's) and keeps race-built children from idling at exit.
func conformanceEnv(procs *sdktest.Processes) []string {
	return []string{procs.Env(), "GORACE=atexit_sleep_ms=0"}
}

// TestOneShotBackend: the one-shot backend driving the default stand-in.
func TestOneShotBackend(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	bin := sdktest.Build(t, "github.com/tthost/tthost/plugins/oneshot", "tthost-backend-oneshot")
	conformance.Run(t, conformance.Target{Path: bin, PluginEnv: conformanceEnv(procs)}, conformanceOpts)
}
