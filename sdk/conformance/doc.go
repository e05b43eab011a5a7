// Package conformance proves that a backend plugin keeps the tthost
// backend contract (docs/protocol.md). It drives a real plugin binary the
// way the host does (sdk/client: checksum-verified launch, go-plugin
// handshake, gRPC), so it tests any plugin, whatever it is written in.
//
// One suite, two front ends: Run(t, target) runs every check as a subtest,
// inside a plugin's own `go test`, and Check(ctx, target, opts) returns a
// Report, which `tthost plugin conformance NAME|PATH` prints for people or
// as JSON. A plugin author's test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Target{Path: sdktest.Build(t, ".", "tthost-backend-mycli")})
//	}
//
// # What is checked
//
// Each check has a stable name (Checks lists them with what a pass
// proves). A check that needs a capability runs only when the plugin
// declares it for the CLI under test:
//
//   - handshake_describe: the plugin starts through the go-plugin
//     handshake with a verified checksum, and its Describe answer is valid
//     (name, version, protocol, CLIs, capabilities, options schema).
//   - stdout_pollution: `--describe` prints exactly one JSON document, the
//     Describe answer, and the plugin still starts and serves a turn when
//     the runtime, gRPC and its own log are as noisy as they get.
//   - open_close: sessions open with SessionReady first, close gracefully
//     and immediately with Exited last, close again without error, refuse
//     input once closed, and an immediate close ends a running turn as
//     interrupted.
//   - turn_event_order: a turn's events carry its id in a valid order,
//     seq has no gaps, a turn sent while one runs fails with
//     sdk.ErrTurnRunning, and urgent input on an idle session starts one.
//   - cancel_bound (interrupt): a long turn, proven running and still
//     running half a second later, ends as interrupted within the
//     cancel bound once cancelled; a cancel without a turn answers no_turn,
//     and the session takes a new turn afterwards.
//   - steer (steer): urgent input during a turn proven running is
//     answered steered, with that turn's id, starts no second turn, and its
//     text shows in that turn's output, transcript or summary (the CLI got
//     it). With Prompts.SteerEcho none the last part is reported unproven.
//   - persistent (persistent): one CLI process serves consecutive turns:
//     a process of the session outlives its first turn and is still there
//     while the second runs, and the second starts no new process under the
//     plugin.
//   - resume (resume): a fresh session reports a runtime session id; in a
//     new plugin process a session opened with it is resumed, and its CLI,
//     asked Prompts.Recall, gives back a word it was told before the
//     restart; an unknown id gives a context-lost reason, never an error.
//     Without a recall prompt the recall is reported unproven.
//   - concurrent_isolation: several sessions run turns at once, and each
//     gets only its own events, output and transcript.
//   - large_and_unicode: a 1 MiB prompt and non-ASCII text go through a
//     turn intact.
//   - errors_in_band: a failing turn is reported in the stream, and bad
//     requests get the documented codes (sdk.ErrInvalidConfig,
//     sdk.ErrUnsupported).
//   - child_environment: the processes a session starts, found by the
//     run's marker and as the plugin's descendants (so a CLI given an
//     environment without the marker is found too), get the session's Env
//     and none of the plugin's internal variables (the handshake cookie,
//     go-plugin's PLUGIN_*, sdk.InternalEnv).
//   - no_process_after_close: when CloseSession returns (immediate during
//     a turn, graceful when idle), no process the session started is alive.
//   - no_process_after_host_cancel: when the host stops the plugin during
//     a turn, the plugin closes its sessions and every process it started
//     is gone before it exits.
//   - no_process_after_host_kill: when the host is killed (SIGKILL) during
//     a turn, the plugin and every process it started are gone within the
//     exit bound.
//
// # Outcomes
//
// A check passes, fails, is not declared or is unproven. A failure
// message says what was expected, what happened and which rule it breaks
// ("(rule: …)"). not_declared: the check covers a capability the plugin
// does not declare, so the host never uses it. unproven: nothing was found
// wrong, but the check could not prove what it covers against this target,
// and the message says what is missing (a plugin process, a CLI that shows
// steered text or recalls a conversation, a process of the session to look
// at). Neither is a failure; Run logs each ("not declared: ...",
// "unproven: ...") in a subtest that neither skips nor fails, and Check's
// report counts them apart from passes.
//
// Every check runs against a fresh plugin process whose environment, and
// every session's Env, hold MarkerEnv with a value of its own. Children
// inherit it, so the process checks find everything the plugin started by
// scanning /proc, wherever it was reparented, and the suite kills whatever
// a failing plugin left. child_environment fails a plugin that starts its
// CLI without that environment.
//
// # A long turn that is really running
//
// The checks that act on a running turn (cancel_bound, steer, persistent,
// and those that close, stop or send during a turn) first prove that it
// runs: the turn's first output, or a process that was not there before
// the turn. TurnStarted proves nothing: a CLI that does not understand the
// long prompt answers it at once, and a cancel sent then finds no turn, or
// one ending anyway. The turn must then go on for half a second more, so
// that a turn ending by itself is not taken for one that a cancel ended,
// nor a steer that was lost for one that arrived. A long prompt the CLI
// does not run long fails the check that needed it, saying so. A turn that
// shows neither output nor a new process, but has not ended after 5 s, is
// taken as running; since a turn ending by itself just then would look
// cancelled, cancel_bound then cancels a second such turn later in its
// life, past the first cancel's bound: a turn that ends at a time of its
// own cannot end right after both cancels.
//
// # In process
//
// Target.Backend, instead of Path, runs the suite against an sdk.Backend
// value in the test's own process: the SDK's server and sdk/client talk
// real gRPC (sdk/sdktest/inprocess), with nothing to build. The checks that
// only a plugin process can show are reported unproven there:
// handshake_describe checks Describe alone, stdout_pollution,
// child_environment, no_process_after_host_cancel and
// no_process_after_host_kill do not run, and a resume "after a restart"
// serves the same value again. Run them against the binary too:
//
//	func TestConformanceInProcess(t *testing.T) {
//		conformance.Run(t, conformance.Target{Backend: newBackend(), Command: "mycli"})
//	}
//
// # The CLI command and its prompts
//
// The suite needs the CLI the backend drives to do some things on
// demand: answer an ordinary prompt, run a long turn (until cancelled) and
// show that it runs, fail a turn, and, when the plugin declares them, show
// steered text and recall a conversation. Target.Command is the command;
// Target.Prompts says which prompts make it run long (Long), fail (Fail),
// run the turn to be steered (Steer), and recall (Recall), and how its
// answers relate to an ordinary prompt (Echo) and to steered text
// (SteerEcho). Ordinary prompts and steered texts are lines of words that
// start with "conformance" and hold a fresh word to tell them apart; the
// 1 MiB prompt continues with lines that start with "line" and ends with a
// line of dots. Their words are separated by single spaces and hold no
// quotes or shell metacharacters, so a stand-in may echo them word by word
// (the example backend's testdata/standin.bash does, for a shell).
//
// The defaults fit StandInCommand, a shell line for backends that run a
// command per turn with the prompt on stdin (the one-shot backend): it
// prints a line and sleeps when the prompt holds MarkSleep, exits 3 when
// it holds MarkFail, and echoes the prompt otherwise. A backend that
// drives a CLI of its own gives that CLI's command and the prompts it
// understands; tthost's own runs are examples:
//
//   - the Codex backend with its fake app-server: Command is the fake's
//     path, Env holds FAKE_CODEX_STATE (threads outlive the process),
//     Prompts{Long: "SLEEP_MS=60000 ECHO=1", Fail: "FAIL=1", Echo:
//     EchoNone, SteerEcho: EchoFull, Recall: "REMEMBER=1"} (ECHO=1 echoes
//     the turn's and steered texts at once; otherwise it answers "handled
//     turn");
//   - the Codex backend with the real codex CLI against codextest's mock
//     model: Command is the codex binary, Env holds codextest.Env(home),
//     Prompts{Long: "SLOW_STREAM", Echo: EchoFirstLine, Recall: "REMEMBER"}
//     (the mock answers "echo: <first line>", so steered text, which codex
//     sends as the next user message, is echoed too), and Fail a word the
//     test's mock script answers with an HTTP error;
//   - the example shell backend with bash and testdata/standin.bash:
//     Prompts{Echo: EchoFull, Steer: "CONFORMANCE_STEER"} (a shell runs
//     steered text after the running command, so the steered turn's
//     command ends by itself after a few seconds).
//
// A backend for a real CLI that cannot be made to sleep, fail or show
// steered text on demand is best tested with a stand-in program in the
// CLI's place that speaks its protocol, the way the Codex backend's fake
// app-server does.
//
// # The host-kill check
//
// no_process_after_host_kill needs a host process to kill. The suite runs
// its own executable again as a stand-in host (any binary that imports
// this package becomes one when TTHOST_CONFORMANCE_STAND_IN_HOST is set),
// so it works in a test binary and in tthost alike, without a Go
// toolchain.
package conformance
