// Command tthost-backend-oneshot is tthost's generic one-shot backend: the
// plugin that drives any coding CLI by running its configured command once
// per turn, the way Tinytown's `cat prompt | <cli>` loop did.
//
// It declares the CLI name sdk.AnyCLI, so the host falls back to it for every
// CLI without a persistent backend. A session holds no CLI process between
// turns; each turn runs `sh -c "<command>"` in the session's workdir, in a
// process group of its own, delivers the prompt on stdin or through a private
// prompt file (option prompt_mode), streams the combined stdout and stderr to
// the turn's transcript file and as assistant deltas, and ends with one
// TurnCompleted carrying the exit status. A cancel stops the whole process
// group (SIGTERM, then SIGKILL); when a turn ends, whatever the CLI left
// running in its group is killed too.
//
// The host launches this binary; it is not meant to be run by hand.
package main

import (
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(newBackend())
}
