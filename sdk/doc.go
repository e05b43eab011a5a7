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
package sdk
