// Command tthost-backend-claude is tthost's persistent backend for Claude
// Code: it serves the CLI claude by keeping one live
// `claude -p --input-format stream-json --output-format stream-json --verbose`
// per agent and driving it over its stream-json lines (see
// docs/protocol.md, "The Claude backend", and docs/compatibility.md for
// what Claude Code 2.1.330 does).
//
// A session's life, in the order things happen. The SDK's plugin.Session
// keeps the contract (the order of events, one turn at a time, input sent
// before claude is ready, close); this backend is its Driver, and runs
// claude as a plugin.Process (its own process group, tagged):
//
//   - OpenSession validates the config (launch.go derives claude's command
//     line from the CLI's configured one-shot command; options.go reads
//     the options) and returns at once. Start mints a session id, starts
//     claude with --session-id=<id> (or --resume=<id> for a saved one) and
//     waits for its answer to an initialize request: claude prints nothing
//     else before its first input. A session claude cannot resume starts
//     fresh, and SessionReady says the context was lost.
//   - A turn is a user line; claude answers it with a result. Urgent input
//     is one more user line (claude folds it into the running turn at a
//     tool boundary, or runs it as a follow-up: the turn stays open until
//     every line is answered, and steer_queued says which). A cancel is an
//     interrupt control request; the process stays. Claude's permission
//     requests are answered by policy (approvals.go).
//   - The hang guard: a turn without a line from claude for the stall
//     timeout is interrupted, claude restarted (--resume) when it does not
//     answer, and the turn fails with turn_stalled (turn.go).
//   - When claude exits on its own, a fatal Error, the running turn's
//     failure and Exited follow (Session.Lost).
//
// Files: wire.go is the stream-json wire; session.go the life cycle
// (start, resume, the reader, stop); turn.go turns, steering, interrupts
// and the hang guard; events.go claude's lines as events; approvals.go
// claude's requests; launch.go the command line; options.go the options.
// internal/fakeclaude is a scriptable stand-in used by the fault tests;
// claudetest runs the real claude offline against a mock Anthropic API.
//
// The host launches this binary; it is not meant to be run by hand.
package main

import (
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(newBackend())
}
