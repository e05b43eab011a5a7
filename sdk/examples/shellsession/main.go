// Command tthost-backend-shellsession is an example tthost backend plugin:
// it keeps one POSIX shell alive per session and runs each turn's prompt in
// it, so a `cd` or a variable set in one turn is still there in the next.
// It is built only against github.com/tthost/tthost/sdk and is meant to be
// read and copied: it shows sessions, turns, steering, cancelling, events
// and process clean-up done the way the contract (docs/protocol.md) asks.
//
// The CLI it serves is "sh", with the capabilities persistent, steer and
// interrupt; the CLI's configured command is the shell to run ("sh",
// "bash --norc", ...). It does not declare resume: a shell's state dies
// with the shell, and a backend declares only what it does.
//
// How a session works (session.go), in the order things happen. The
// SDK's plugin.Session keeps the contract (turn ids, the order of events,
// input before the shell is ready, close); this backend is its Driver, and
// runs the shell as a plugin.Process:
//
//   - OpenSession starts the shell (in a process group of its own, tagged
//     with a plugin.ProcessTag) and returns. The Driver's Start writes a
//     small prelude (protocol.go) and waits for the shell to answer it, so
//     a command that is not a shell ends the session with a clear error;
//     then SessionReady and AwaitingInput. A turn sent before that waits.
//   - A turn is a chunk of shell code: the prompt, run by the prelude's
//     __tt_run function, followed by a printf of a marker that carries the
//     chunk's exit status. Output lines become assistant deltas (and the
//     transcript); the marker answers the chunk (Turn.Answered): exit
//     status 0 is completed, anything else failed.
//   - Urgent input during a turn (steer) is another chunk of the same
//     turn: it runs after the commands before it, and the turn ends at the
//     marker of its last chunk.
//   - A cancel sends SIGINT to the shell's process group, as Ctrl-C does:
//     the running command dies, the prelude's trap ends the chunk, and the
//     turn completes interrupted; the shell lives on. A command that
//     ignores SIGINT is killed after cancelGrace; a shell that still does
//     not come back is killed, and the session ends.
//   - When the shell dies on its own, the session reports a fatal Error,
//     fails the running turn and emits Exited (Session.Lost). Close ends
//     the shell (gracefully: stdin closed, so it finishes what it was
//     given; or at once: SIGTERM, then SIGKILL) and, through the tag,
//     everything it started.
//
// The host launches this binary; see README.md for building, installing,
// proving it with the conformance suite and running agents on it.
package main

import (
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(backend{})
}
