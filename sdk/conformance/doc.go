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
//		bin := sdktest.Build(t, "example.com/mybackend", "tthost-backend-mine")
//		conformance.Run(t, conformance.Target{Path: bin})
//	}
//
// # What is checked
//
// Each check has a stable name (Checks lists them with what a pass
// proves): handshake_describe, stdout_pollution, open_close,
// turn_event_order, cancel_bound (interrupt), steer (steer), resume
// (resume), concurrent_isolation, large_and_unicode, errors_in_band,
// child_environment, no_process_after_close, no_process_after_host_cancel and
// no_process_after_host_kill. The capabilities the plugin declares in
// Describe for the CLI under test decide which checks apply; a check for
// a capability it does not declare is reported as not_declared (the host
// never uses it), which is neither a pass nor a failure. A failure message
// says what was expected, what happened and which rule it breaks.
//
// Every check runs against a fresh plugin process whose environment holds
// MarkerEnv with a value of its own. Children inherit it, so the process
// checks find everything the plugin started by scanning /proc, wherever it
// was reparented, and the suite kills whatever a failing plugin left.
//
// # The CLI command and its markers
//
// The suite needs the CLI the backend drives to do three things on
// demand: answer an ordinary prompt, run a long turn (until cancelled),
// and fail a turn. Target.Command is the command; Target.Prompts says
// which prompts make it run long (Long) or fail (Fail), and how its answer
// relates to an ordinary prompt (Echo). Ordinary prompts are lines of
// words that start with "conformance" and hold a fresh word to tell them
// apart; the 1 MiB prompt continues with lines that start with "line" and
// ends with a line of dots. Their words are separated by single spaces and
// hold no quotes or shell metacharacters, so a stand-in may echo them word
// by word (the example backend's testdata/standin.bash does, for a shell).
//
// The defaults fit StandInCommand, a shell line for backends that run a
// command per turn with the prompt on stdin (the one-shot backend): it
// sleeps when the prompt holds MarkSleep, exits 3 when it holds MarkFail,
// and echoes the prompt otherwise. A backend that drives a CLI of its own
// gives that CLI's command and the prompts it understands; tthost's own
// runs are examples:
//
//   - the Codex backend with its fake app-server: Command is the fake's
//     path, Prompts{Long: "SLEEP_MS=60000", Fail: "FAIL=1", Echo: EchoNone}
//     (the fake answers "handled turn");
//   - the Codex backend with the real codex CLI against codextest's mock
//     model: Command is the codex binary, Env holds codextest.Env(home),
//     Prompts{Long: "SLOW_STREAM", Echo: EchoFirstLine} (the mock answers
//     "echo: <first line>"), and Fail a word the test's mock script
//     answers with an HTTP error.
//
// A backend for a real CLI that cannot be made to sleep or fail on
// demand is best tested with a stand-in program in the CLI's place that
// speaks its protocol, the way the Codex backend's fake app-server does.
//
// # The host-kill check
//
// no_process_after_host_kill needs a host process to kill. The suite runs
// its own executable again as a stand-in host (any binary that imports
// this package becomes one when TTHOST_CONFORMANCE_STAND_IN_HOST is set),
// so it works in a test binary and in tthost alike, without a Go
// toolchain.
package conformance
