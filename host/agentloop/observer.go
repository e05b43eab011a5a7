package agentloop

import (
	"time"

	"github.com/tthost/tthost/sdk"
)

// Observer is told what a loop does, for a host's metrics (host/metrics).
// Its methods are called from the loop's goroutine and must not block; a
// host that serves many agents gives all their loops one Observer.
type Observer interface {
	// TurnEnded reports every turn that reached the CLI, once, when its
	// outcome is settled.
	TurnEnded(r TurnReport)
	// Steered reports an urgent message steered into a running turn: the
	// time from the intake that took it to the backend's receipt.
	Steered(a AgentRef, latency time.Duration)
	// QueueDepth reports what waits in the agent's queues after an intake.
	QueueDepth(a AgentRef, inbox, urgent int64)
	// RedisError reports a Redis call of the loop that failed (an outage
	// counts once, when it starts).
	RedisError(a AgentRef)
}

// AgentRef names the agent an observation is about.
type AgentRef struct {
	ID, Name, CLI string
}

// Turn outcomes in a TurnReport.
const (
	OutcomeCompleted   = "completed"   // the CLI finished the turn; its messages are acknowledged
	OutcomeFailed      = "failed"      // the CLI failed the turn; its messages are re-queued
	OutcomeInterrupted = "interrupted" // stop, pause, shutdown or a lost lease cancelled it
	OutcomeLost        = "lost"        // the session or plugin ended before the turn did
)

// TurnReport is one settled turn.
type TurnReport struct {
	Agent    AgentRef
	Backend  string
	Outcome  string // one of the Outcome constants
	Duration time.Duration
	// Usage sums the turn's usage events (zero when the backend reports
	// none).
	Usage sdk.Usage
}

// nopObserver is the Observer of a loop that has none.
type nopObserver struct{}

func (nopObserver) TurnEnded(TurnReport)              {}
func (nopObserver) Steered(AgentRef, time.Duration)   {}
func (nopObserver) QueueDepth(AgentRef, int64, int64) {}
func (nopObserver) RedisError(AgentRef)               {}
