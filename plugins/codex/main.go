// Command tthost-backend-codex is tthost's persistent backend for OpenAI
// Codex: it serves the CLIs codex and codex-mini by keeping one live
// `codex app-server --listen stdio://` per agent and driving it over its
// JSON-RPC protocol (see docs/protocol.md, "The Codex backend").
//
// A session's life, in the order things happen. The SDK's plugin.Session
// keeps the contract (the order of events, one turn at a time, input sent
// before codex is ready, close); this backend is its Driver, and runs the
// app-server as a plugin.Process (its own process group, tagged):
//
//   - OpenSession validates the config, starts the app-server (launch.go
//     derives its command line from the CLI's configured one-shot command)
//     and returns at once. The Driver's Start initializes it and starts a
//     thread, or resumes the saved one: a thread codex cannot resume
//     starts a new one and SessionReady says the context was lost. A turn
//     sent before that is held until codex is ready.
//   - A turn is `turn/start`, and codex names it; urgent input while a
//     turn runs is `turn/steer` (or, when it races the turn's end, the
//     next turn); a cancel is `turn/interrupt`. Codex's notifications
//     become the turn's events, matched to turns by id. Every server
//     request is answered: approvals by the session's policy (options),
//     anything else with a JSON-RPC error.
//   - When the app-server exits on its own, a fatal Error, the running
//     turn's failure and Exited follow (Session.Lost). Close stops it
//     gracefully (stdin closed) or at once (turn interrupted, then
//     SIGTERM and SIGKILL); nothing it started outlives the session.
//
// Files: the wire (line decoding, requests with deadlines) is the shared
// plugins/internal/jsonrpc; session.go the life cycle's hooks: start,
// handshake, the end; send.go turns, steering and interrupts; notify.go
// the notifications;
// approvals.go the server requests; process.go the app-server's process
// and stderr; launch.go the command line; options.go the options.
// internal/fakeappserver is a scriptable stand-in for codex used by the
// tests.
//
// The host launches this binary; it is not meant to be run by hand.
package main

import (
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(newBackend())
}
