package sdk

import (
	"slices"
	"strings"
	"time"
)

// ProtocolVersion is the backend contract version this SDK serves by
// default: the go-plugin protocol version and the proto package major
// (tthost.backend.v1).
const ProtocolVersion = 1

// Version is the SDK's own version, reported in Describe. The module is
// tagged sdk/v<Version> (Go's form for a module in a subdirectory).
const Version = "0.3.0"

// AnyCLI as a CLI name means "any CLI": the backend is a fallback that can
// drive any command (the one-shot backend).
const AnyCLI = "*"

// Capability is an optional feature a backend declares per CLI.
type Capability string

// Known capabilities. Hosts ignore values they do not know.
const (
	// CapPersistent: one live CLI session is kept across turns.
	CapPersistent Capability = "persistent"
	// CapSteer: urgent input can be added to a running turn.
	CapSteer Capability = "steer"
	// CapInterrupt: a running turn can be cancelled.
	CapInterrupt Capability = "interrupt"
	// CapResume: a session can be reopened from a saved runtime session id.
	CapResume Capability = "resume"
	// CapApprovals: approval requests are answered by policy and reported.
	CapApprovals Capability = "approvals"
	// CapUsage: token usage is reported.
	CapUsage Capability = "usage"
)

// Description is what Describe returns.
type Description struct {
	// Name is the backend's short name ("oneshot", "codex"): lowercase
	// letters, digits and dashes.
	Name string
	// Version is the plugin's semantic version.
	Version string
	// Summary is one line saying what the backend does.
	Summary string
	// CLIs lists the CLIs served, each with its capabilities. A CLI named
	// AnyCLI makes the backend a fallback for every CLI.
	CLIs []CLI
	// OptionsSchema is a JSON Schema of SessionConfig.Options keys, or "".
	OptionsSchema string

	// SDKVersion and ProtocolVersion are filled in by the SDK.
	SDKVersion      string
	ProtocolVersion int
}

// CLI is one CLI a backend serves.
type CLI struct {
	Name         string
	Capabilities []Capability
}

// Has reports whether the CLI declares the capability.
func (c CLI) Has(capability Capability) bool {
	return slices.Contains(c.Capabilities, capability)
}

// Lookup returns the backend's entry for a CLI name: an exact match first,
// else the AnyCLI entry. ok is false when the backend serves neither.
func (d Description) Lookup(cliName string) (cli CLI, ok bool) {
	for _, c := range d.CLIs {
		if c.Name == cliName {
			return c, true
		}
	}
	for _, c := range d.CLIs {
		if c.Name == AnyCLI {
			return c, true
		}
	}
	return CLI{}, false
}

// SessionConfig is what OpenSession receives.
type SessionConfig struct {
	// CLIName is the CLI the agent is registered with ("codex", "claude",
	// or a raw command when no preset matched).
	CLIName string
	// Command is the shell command configured for that CLI.
	Command string
	// Workdir is the CLI's working directory (the town root).
	Workdir string
	// Env is added to the CLI's environment.
	Env map[string]string
	// ResumeID is a runtime session id from an earlier SessionReady, or "".
	ResumeID string
	// Options are backend-specific settings (see OptionsSchema).
	Options map[string]string
	// AgentID and AgentName name the agent, for logs and file names.
	AgentID   string
	AgentName string
	// LogDir is where the backend may write per-session logs, or "".
	LogDir string
}

// InputKind says what an Input asks for.
type InputKind int

const (
	// InputTurn starts a new turn.
	InputTurn InputKind = iota + 1
	// InputUrgent steers into the running turn (CapSteer), else starts one.
	InputUrgent
	// InputCancel cancels the running turn (CapInterrupt).
	InputCancel
)

func (k InputKind) String() string {
	switch k {
	case InputTurn:
		return "turn"
	case InputUrgent:
		return "urgent"
	case InputCancel:
		return "cancel"
	}
	return "unknown"
}

// Input is one thing delivered to a session.
type Input struct {
	Kind InputKind
	// Text is the prompt (InputTurn, InputUrgent).
	Text string
	// TranscriptPath is the file the turn's output is written to, or "".
	TranscriptPath string
}

// DeliveryKind says how an Input was delivered.
type DeliveryKind int

const (
	// DeliveryStarted: a new turn was started.
	DeliveryStarted DeliveryKind = iota + 1
	// DeliverySteered: the input joined the running turn.
	DeliverySteered
	// DeliveryCancelled: the running turn was asked to stop.
	DeliveryCancelled
	// DeliveryNoTurn: a cancel found no running turn.
	DeliveryNoTurn
)

func (k DeliveryKind) String() string {
	switch k {
	case DeliveryStarted:
		return "started"
	case DeliverySteered:
		return "steered"
	case DeliveryCancelled:
		return "cancelled"
	case DeliveryNoTurn:
		return "no_turn"
	}
	return "unknown"
}

// Delivery is Send's answer.
type Delivery struct {
	Kind   DeliveryKind
	TurnID string
	// SteerMode says, for DeliverySteered, how the input joined the turn
	// ("" from plugins that predate it: read it as SteerNative).
	SteerMode SteerMode
}

// SteerMode says how a session joins urgent input to a running turn. A CLI
// whose protocol has no mid-turn input (ACP v1) has steering emulated by
// its plugin, and the host is told which way, so that its logs and status
// say what really happened.
type SteerMode string

// Steer modes.
const (
	// SteerNative: the CLI itself took the input into the running turn
	// (codex turn/steer, a Claude Code stream-json user line).
	SteerNative SteerMode = "native"
	// SteerQueue: the input is prompted as a follow-up once the CLI's
	// running prompt ends, within the same turn. The running work is not
	// disturbed; the input waits for it.
	SteerQueue SteerMode = "queue"
	// SteerRestart: the running prompt is cancelled and prompted again
	// with the input merged in, within the same turn. The input is acted
	// on at once; the cancelled prompt's partial work stays in the CLI's
	// history.
	SteerRestart SteerMode = "restart"
)

// CloseMode says how a session is closed.
type CloseMode int

const (
	// CloseGraceful lets the CLI finish cleanly until the context deadline.
	CloseGraceful CloseMode = iota + 1
	// CloseImmediate cancels the running turn and stops the CLI at once.
	CloseImmediate
)

// EventKind names an event. The values are stable and used in logs.
type EventKind string

// Event kinds, in the order a session typically emits them.
const (
	EventSessionReady   EventKind = "session_ready"
	EventTurnStarted    EventKind = "turn_started"
	EventAssistantDelta EventKind = "assistant_delta"
	EventToolCall       EventKind = "tool_call"
	EventApproval       EventKind = "approval"
	EventUsage          EventKind = "usage"
	EventTurnCompleted  EventKind = "turn_completed"
	EventAwaitingInput  EventKind = "awaiting_input"
	EventError          EventKind = "error"
	EventExited         EventKind = "exited"
)

// Event is one thing that happened in a session. Kind says which payload
// field is set: Text for EventAssistantDelta, Ready for EventSessionReady,
// and so on; EventTurnStarted and EventAwaitingInput carry none.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// TurnID is the turn the event belongs to ("" for session events).
	TurnID string
	// SessionID, Seq and Time are filled in by the SDK when emitted.
	SessionID string
	Seq       uint64
	Time      time.Time

	Text      string
	Ready     *SessionReady
	Tool      *ToolCall
	Approval  *Approval
	Usage     *Usage
	Completed *TurnCompleted
	Error     *ErrorInfo
	Exited    *ExitInfo
}

// SessionReady is the payload of EventSessionReady.
type SessionReady struct {
	// RuntimeSessionID is the CLI's own session id (e.g. a Codex thread id),
	// saved by the host and passed back as ResumeID after a restart.
	RuntimeSessionID string
	// Resumed is true when ResumeID was found and the session continues.
	Resumed bool
	// ContextLostReason is set when a ResumeID could not be resumed and a
	// fresh session was started instead.
	ContextLostReason string
	// SteerMode is how the session steers urgent input; "" when it cannot
	// steer (or from plugins that predate it).
	SteerMode SteerMode
}

// ToolCall is the payload of EventToolCall.
type ToolCall struct {
	ID       string
	Kind     string // "command", "file_change", "mcp", ...
	Name     string // the command line, the path, "server:tool"
	Status   string // "completed", "failed", "declined", ...
	ExitCode *int
}

// Approval is the payload of EventApproval.
type Approval struct {
	RequestID   string
	Kind        string
	Description string
	Decision    string
	TimedOut    bool
}

// Usage is the payload of EventUsage.
type Usage struct {
	InputTokens           int64
	CachedInputTokens     int64
	OutputTokens          int64
	ReasoningOutputTokens int64
	TotalTokens           int64
}

// TurnStatus is a turn's outcome.
type TurnStatus string

// Turn outcomes.
const (
	StatusCompleted   TurnStatus = "completed"
	StatusInterrupted TurnStatus = "interrupted"
	StatusFailed      TurnStatus = "failed"
)

// TurnCompleted is the payload of EventTurnCompleted.
type TurnCompleted struct {
	Status   TurnStatus
	Summary  string
	Error    string
	ExitCode *int
}

// ErrorInfo is the payload of EventError.
type ErrorInfo struct {
	Code    string
	Message string
	Fatal   bool
}

// ExitInfo is the payload of EventExited.
type ExitInfo struct {
	ExitCode *int
	Signal   string
	Reason   string
}

// Exit reasons used by the SDK and the host.
const (
	ExitClosed       = "closed"
	ExitCLIExited    = "cli_exited"
	ExitPluginExited = "plugin_exited"
)

// Event constructors, so backends read naturally:
//
//	events.Emit(sdk.TurnStartedEvent(turnID))

// SessionReadyEvent reports the session ready.
func SessionReadyEvent(r SessionReady) Event {
	return Event{Kind: EventSessionReady, Ready: &r}
}

// TurnStartedEvent reports a turn running.
func TurnStartedEvent(turnID string) Event {
	return Event{Kind: EventTurnStarted, TurnID: turnID}
}

// DeltaEvent reports assistant or CLI output.
func DeltaEvent(turnID, text string) Event {
	return Event{Kind: EventAssistantDelta, TurnID: turnID, Text: text}
}

// ToolCallEvent reports a tool call.
func ToolCallEvent(turnID string, t ToolCall) Event {
	return Event{Kind: EventToolCall, TurnID: turnID, Tool: &t}
}

// ApprovalEvent reports an approval request and its decision.
func ApprovalEvent(turnID string, a Approval) Event {
	return Event{Kind: EventApproval, TurnID: turnID, Approval: &a}
}

// UsageEvent reports token usage.
func UsageEvent(turnID string, u Usage) Event {
	return Event{Kind: EventUsage, TurnID: turnID, Usage: &u}
}

// TurnCompletedEvent reports a turn's outcome.
func TurnCompletedEvent(turnID string, c TurnCompleted) Event {
	return Event{Kind: EventTurnCompleted, TurnID: turnID, Completed: &c}
}

// AwaitingInputEvent reports the session idle and ready for input.
func AwaitingInputEvent() Event {
	return Event{Kind: EventAwaitingInput}
}

// ErrorEvent reports an error in the session or a turn.
func ErrorEvent(turnID, code, message string, fatal bool) Event {
	return Event{Kind: EventError, TurnID: turnID, Error: &ErrorInfo{Code: code, Message: message, Fatal: fatal}}
}

// ExitedEvent reports the session's runtime gone; it is the last event.
func ExitedEvent(e ExitInfo) Event {
	return Event{Kind: EventExited, Exited: &e}
}

// IntPtr returns a pointer to v, for the optional exit codes.
func IntPtr(v int) *int { return &v }

// TurnText is the assistant's answer in a turn: the text of its
// EventAssistantDelta events, in order.
func TurnText(evs []Event, turnID string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Kind == EventAssistantDelta && e.TurnID == turnID {
			b.WriteString(e.Text)
		}
	}
	return b.String()
}
