package sdk

import (
	"context"
	"errors"
)

// Backend is what a plugin implements: it describes itself and opens
// sessions. One plugin process serves many sessions at once, so OpenSession
// and every Session method must be safe for concurrent use.
type Backend interface {
	// Describe reports the plugin's name, version and the CLIs it serves.
	// It must not start any CLI and must answer quickly: the host calls it
	// after every launch with a deadline of a few seconds.
	Describe(ctx context.Context) (Description, error)

	// OpenSession prepares a session for one agent and returns at once.
	// Everything that happens later (the CLI session becoming ready, turns,
	// output, errors) is reported through events. The sink stays valid until
	// the session emits Exited; the SDK buffers, numbers and streams what is
	// emitted, and coalesces assistant deltas.
	//
	// Return an error wrapping ErrInvalidConfig for a request the backend
	// cannot serve (unknown CLI, empty command).
	OpenSession(ctx context.Context, cfg SessionConfig, events EventSink) (Session, error)
}

// Session is one agent's conversation with its CLI.
type Session interface {
	// Send delivers input. A turn while another turn runs fails with
	// ErrTurnRunning; a kind the backend did not declare fails with
	// ErrUnsupported. The returned Delivery names the turn the input went to,
	// and every event of that turn must carry the same turn id.
	Send(ctx context.Context, in Input) (Delivery, error)

	// Close ends the session. CloseGraceful lets the CLI finish cleanly until
	// ctx's deadline, then stops it by force; CloseImmediate cancels any
	// running turn (its TurnCompleted reports StatusInterrupted) and stops
	// the CLI at once. When Close returns, every process the session started
	// is gone and the session has emitted Exited. Close must be idempotent.
	Close(ctx context.Context, mode CloseMode) error
}

// EventSink receives a session's events. Emit never blocks for long and is
// safe for concurrent use; events emitted after Exited are dropped.
type EventSink interface {
	Emit(Event)
}

// Shutdowner is an optional interface for backends that hold resources of
// their own beyond their sessions. The SDK calls Shutdown once before the
// plugin exits (host asked it to stop, SIGTERM, or the host died), after
// every open session was closed: immediately, or, when the plugin exits
// because its reattach window ran out with no host, gracefully first.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Sentinel errors. Wrap them with fmt.Errorf("...: %w", ErrX) to add
// detail; the SDK maps them to gRPC status codes and the host client maps
// the codes back, so errors.Is works on both sides of the wire.
var (
	// ErrInvalidConfig: OpenSession was asked for something the backend
	// cannot serve (INVALID_ARGUMENT).
	ErrInvalidConfig = errors.New("invalid session config")
	// ErrSessionNotFound: no open session has that id (NOT_FOUND).
	ErrSessionNotFound = errors.New("session not found")
	// ErrTurnRunning: a turn was sent while another turn runs
	// (FAILED_PRECONDITION).
	ErrTurnRunning = errors.New("a turn is already running")
	// ErrUnsupported: the input kind needs a capability the backend did not
	// declare (UNIMPLEMENTED).
	ErrUnsupported = errors.New("not supported by this backend")
	// ErrShuttingDown: the plugin is stopping and takes no new work
	// (UNAVAILABLE).
	ErrShuttingDown = errors.New("plugin is shutting down")
	// ErrPluginExited: the plugin process is gone (host side only).
	ErrPluginExited = errors.New("plugin process exited")
)
