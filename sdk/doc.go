// Package sdk is the one package a tthost backend plugin imports.
//
// A backend drives one kind of coding CLI for the tthost host: it opens a
// session per agent, runs turns, and reports what happens as events. The
// host runs the backend as a separate plugin process and talks to it over
// gRPC; the SDK hides all of that (go-plugin handshake, protocol versions,
// TLS, logging, stdout protection, signals). A plugin's main is one call:
//
//	func main() {
//		sdk.Serve(mybackend.New())
//	}
//
// A backend implements Backend (Describe and OpenSession) and returns a
// Session per agent (Send and Close). Optional behaviour is declared as
// capabilities per CLI in Describe; optional Go interfaces such as
// Shutdowner are discovered by type assertion.
//
// Events are emitted through the EventSink passed to OpenSession. The SDK
// numbers them, buffers them until the host subscribes, coalesces
// assistant deltas, and streams them to the host in order. Every turn the
// backend starts ends with exactly one TurnCompleted event, and every
// session ends with one Exited event.
//
// Errors returned from Send and OpenSession should wrap the sentinel errors
// in this package (ErrTurnRunning, ErrInvalidConfig, ...); they arrive at
// the host as the same sentinel.
//
// What Serve takes care of:
//
//   - Logging: Logger returns a JSON logger on stderr, which the host
//     forwards to its own log under the plugin's name; the level comes from
//     TTHOST_PLUGIN_LOG_LEVEL (the host sets it to its own).
//   - Stdout: the host reads the plugin's stdout for the handshake, so the
//     SDK sets the real stdout aside before the plugin's own code runs and
//     sends stray prints to stderr. Never print to stdout anyway.
//   - Stopping: when the host stops the plugin, on SIGTERM, and when the
//     host process dies, every open session is closed with CloseImmediate
//     (within 5 s), a Shutdowner backend's Shutdown is called, and the
//     process exits with status 0.
//   - Running by hand: `plugin --describe` prints the Description as JSON;
//     without arguments the binary explains what it is and exits 1.
package sdk
