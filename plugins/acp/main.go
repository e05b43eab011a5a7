// Command tthost-backend-acp is tthost's persistent backend for agents that
// speak the Agent Client Protocol (ACP, protocol version 1): Gemini CLI
// (`gemini --acp`), Zed's claude-code-acp and codex-acp, and any other.
// It keeps one live agent process and one ACP session per tthost session
// and drives it over JSON-RPC 2.0 on the agent's stdin and stdout (see
// docs/protocol.md, "The ACP backend").
//
// A session's life, in the order things happen. The SDK's plugin.Session
// keeps the contract (the order of events, one turn at a time, input sent
// before the agent is ready, close); this backend is its Driver, and runs
// the agent as a plugin.Process (its own process group, tagged):
//
//   - OpenSession validates the config, starts the configured command
//     (`--acp` is added for Tinytown's `gemini` preset; claude-code-acp
//     gets IS_SANDBOX=1 when the plugin runs as root) and returns at
//     once. The Driver's Start sends initialize (protocol version 1, client
//     info, no fs or terminal capability), authenticates when the agent
//     asks (the option auth_method, or the method the environment has a
//     credential for), and sends session/new, or session/load of the saved
//     session id when the agent can load sessions. A session it cannot load
//     starts anew and SessionReady says the context was lost. The history a
//     load replays is dropped, never counted as a turn's output.
//   - A turn is session/prompt; session/update notifications become its
//     events (message chunks → deltas, tool calls → ToolCall events on
//     each status change, plans and reasoning → the transcript) and the
//     prompt's answer its end (stopReason) and usage. Urgent input is
//     emulated (ACP v1 has no steer): queued for a prompt right after the
//     running one, or the running prompt cancelled and prompted again with
//     the text merged (option steer_mode). A cancel is session/cancel.
//   - session/request_permission is answered by the option permission;
//     every other request of the agent (fs/*, terminal/*, ...) at once with
//     a JSON-RPC error.
//   - A turn the agent stays silent in past stall_timeout_ms is cancelled;
//     an agent that does not answer that cancel is killed and restarted
//     (loading the same session), and the turn fails turn_stalled. An agent
//     that exits on its own ends the session (Session.Lost).
//
// Why not github.com/coder/acp-go-sdk: the client here is small, and owning
// it keeps what matters to an unattended worker under our control. The
// wire is plugins/internal/jsonrpc, shared with the Codex backend and
// fuzzed, with bounded lines (an SDK's decoder would buffer a line of any
// length) and both id spaces handled explicitly (gemini numbers its first
// request 0, like our initialize); session/prompt's answer is handled on
// the reader in wire order, after the updates before it, so the replay of
// a session/load that is answered early can be told from a turn's output;
// tthost serves no fs or terminal methods, which the SDK's Client
// interface requires; and the SDK is pre-1.0 with API churn between
// releases.
//
// Files: session.go the life cycle: start, handshake, auth, load, the
// end; turn.go turns, emulated steering, cancel, the stall watchdog and
// restart; notify.go session/update; approvals.go the agent's requests;
// wire.go the fuzzed decoders of what the agent sends; gemini.go Gemini
// CLI's session/load guard; claudeacp.go claude-code-acp as root
// (IS_SANDBOX); process.go the agent's process and stderr; options.go the
// options and the command (and which known agent it runs). acptest runs
// the real agents
// offline against mock model servers; internal/fakeagent is a scriptable
// ACP agent for fault injection.
//
// The host launches this binary; it is not meant to be run by hand.
package main

import (
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(newBackend())
}
