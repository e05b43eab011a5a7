package town

import "errors"

// Sentinel errors; functions wrap them with detail, test with errors.Is.
var (
	ErrInvalidID        = errors.New("invalid id")
	ErrInvalidTime      = errors.New("invalid timestamp")
	ErrAgentNotFound    = errors.New("agent not found")
	ErrAgentExists      = errors.New("agent already exists")
	ErrAmbiguousAgent   = errors.New("agent reference is ambiguous")
	ErrReservedName     = errors.New("name is reserved")
	ErrInvalidRecord    = errors.New("invalid record")
	ErrTaskNotFound     = errors.New("task not found")
	ErrTaskExists       = errors.New("task already exists")
	ErrNotInBacklog     = errors.New("task not in backlog")
	ErrInvalidMessage   = errors.New("invalid message")
	ErrNotInFlight      = errors.New("message not in flight")
	ErrUnknownEventType = errors.New("unknown event type")
	ErrInvalidEvent     = errors.New("invalid event")
	ErrUnknownField     = errors.New("unknown field")
)
