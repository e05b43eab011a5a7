// Command brokenplugin serves the broken backend (package broken): a
// plugin for the conformance suite's own tests, well-behaved by default
// and broken on demand. BROKEN_PLUGIN_DEFECTS, a comma-separated list of
// broken.Defects, breaks it.
package main

import (
	"fmt"
	"os"

	"github.com/tthost/tthost/sdk/conformance/internal/brokenplugin/broken"
	"github.com/tthost/tthost/sdk/internal/stdoutguard"
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	b := broken.New(os.Getenv(broken.DefectsEnv))
	if b.PolluteStdout() {
		// Past the SDK's stdout guard, onto the stdout the host reads the
		// handshake from: what a careless write to fd 1 in a plugin not
		// built with the SDK does.
		fmt.Fprintln(stdoutguard.Stdout(), "broken plugin: hello from stdout")
	}
	plugin.Serve(b)
}
