// Command tthost-backend-codex is tthost's persistent backend for OpenAI
// Codex: it serves the CLIs codex and codex-mini by keeping one live
// `codex app-server --listen stdio://` per agent and driving it over its
// JSON-RPC protocol (see docs/protocol.md, "The Codex backend").
//
// A session's life, in the order things happen:
//
//   - OpenSession validates the config and returns at once. A goroutine
//     starts the app-server (launch.go derives its command line from the
//     CLI's configured one-shot command) in a process group of its own,
//     initializes it and starts a thread, or resumes the saved one: a
//     thread codex cannot resume starts a new one and SessionReady says the
//     context was lost.
//   - A turn is `turn/start`; urgent input while a turn runs is
//     `turn/steer` (or, when it races the turn's end, the next turn); a
//     cancel is `turn/interrupt`. Codex's notifications become the
//     session's events, matched to turns by id. Every server request is
//     answered: approvals by the session's policy (options), anything else
//     with a JSON-RPC error.
//   - When the app-server exits on its own, the running turn fails, a
//     fatal Error and Exited follow. Close stops it gracefully (stdin
//     closed) or at once (turn interrupted, group killed); nothing it
//     started outlives the session.
//
// Files: jsonrpc.go is the wire (line decoding, requests with deadlines);
// session.go the life cycle; send.go turns, steering and interrupts;
// notify.go the notifications; approvals.go the server requests;
// process.go the process group; launch.go the command line; options.go the
// options. internal/fakeappserver is a scriptable stand-in for codex used
// by the tests.
//
// The host launches this binary; it is not meant to be run by hand.
package main

import (
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(newBackend())
}
