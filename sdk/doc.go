// Package sdk is the backend contract: the types a tthost backend plugin
// and the host share (Backend, Session, Input, Delivery, Event, the
// capabilities and the errors), with no gRPC and no start-up code. A
// plugin also imports sdk/plugin (Serve and the helpers a backend is built
// from); its tests import sdk/conformance and sdk/sdktest.
//
// A backend drives one kind of coding CLI for tthost: it opens a session
// per agent, runs the agent's turns in the CLI, and reports what happens as
// events. tthost runs each backend as a plugin process of its own and talks
// to it over gRPC (hashicorp/go-plugin); this package hides all of that
// (handshake, protocol versions, TLS, logging, stdout protection, signals)
// behind Go types. docs/plugin-authoring.md walks from an empty folder to
// an installed plugin that passes the conformance suite;
// docs/protocol.md is the contract.
//
// # The one-call main
//
// A plugin's main makes one call, which does not return:
//
//	func main() {
//		plugin.Serve(mybackend{})
//	}
//
// # A complete minimal backend
//
// A backend implements Backend: Describe says who it is and which CLIs it
// serves with which capabilities; OpenSession returns a Session for one
// agent. A Session takes input through Send (a turn, an urgent message, a
// cancel) and ends with Close. Everything else travels as events through
// the EventSink that OpenSession receives.
//
// This backend serves a CLI named "echo" and declares no capabilities: it
// answers each turn with the prompt, without starting any process. It
// keeps every rule below about sessions, turns and events; a backend around
// a real CLI also writes each turn's transcript and owns processes.
//
//	type echoBackend struct{}
//
//	func (echoBackend) Describe(context.Context) (sdk.Description, error) {
//		return sdk.Description{
//			Name:    "echo",
//			Version: "0.1.0",
//			Summary: "answers every turn with its prompt",
//			CLIs:    []sdk.CLI{{Name: "echo"}},
//		}, nil
//	}
//
//	func (echoBackend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
//		if cfg.CLIName != "echo" {
//			return nil, fmt.Errorf("%w: this backend serves echo, not %q", sdk.ErrInvalidConfig, cfg.CLIName)
//		}
//		events.Emit(sdk.SessionReadyEvent(sdk.SessionReady{}))
//		events.Emit(sdk.AwaitingInputEvent())
//		return &echoSession{events: events}, nil
//	}
//
//	type echoSession struct {
//		events sdk.EventSink
//		mu     sync.Mutex // orders Send and Close, and so the events
//		turns  int
//		closed bool
//	}
//
//	func (s *echoSession) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
//		s.mu.Lock()
//		defer s.mu.Unlock()
//		switch {
//		case s.closed:
//			return sdk.Delivery{}, fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
//		case in.Kind == sdk.InputCancel:
//			return sdk.Delivery{}, fmt.Errorf("%w: cancel (interrupt is not declared)", sdk.ErrUnsupported)
//		}
//		s.turns++ // a turn, or urgent input: without steer, both start a turn
//		id := fmt.Sprintf("t%d", s.turns)
//		s.events.Emit(sdk.TurnStartedEvent(id))
//		s.events.Emit(sdk.DeltaEvent(id, in.Text))
//		s.events.Emit(sdk.TurnCompletedEvent(id, sdk.TurnCompleted{Status: sdk.StatusCompleted}))
//		s.events.Emit(sdk.AwaitingInputEvent())
//		return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: id}, nil
//	}
//
//	func (s *echoSession) Close(context.Context, sdk.CloseMode) error {
//		s.mu.Lock()
//		defer s.mu.Unlock()
//		if !s.closed {
//			s.closed = true
//			s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
//		}
//		return nil
//	}
//
//	func main() {
//		plugin.Serve(echoBackend{})
//	}
//
// A backend that drives a real CLI does not write this life cycle itself:
// package plugin has it (plugin.Session, driven by a plugin.Driver that says
// only how the CLI starts, takes a turn, steers, cancels and stops), with
// the CLI's process (plugin.Process), its output as lines
// (plugin.LineReader) and the turn's transcript (plugin.Transcript). The
// plugin-authoring guide builds a persistent backend for a line-oriented
// REPL with them in about a hundred lines (docs/tutorial), and
// sdk/examples/shellsession keeps one live shell per session.
//
// # Sessions, turns and events
//
// One plugin process serves many sessions at once: OpenSession and every
// Session method must be safe for concurrent use. OpenSession checks the
// request and returns; what happens later is reported as events. The SDK
// numbers each session's events, buffers them until the host subscribes,
// coalesces assistant deltas (at most one per 100 ms or 4 KiB per turn) and
// streams them in order. The rules, which the conformance suite checks:
//
//   - A session starts with SessionReady, then AwaitingInput.
//     OpenSession returns at once; a CLI that takes time to start reports
//     SessionReady when it is ready.
//   - Input sent before SessionReady is accepted, never refused for being
//     early: a turn is held and given to the CLI once it is ready (Send
//     answers DeliveryStarted with its id at once; its TurnStarted follows
//     SessionReady and AwaitingInput); urgent input for it waits until the
//     CLI has the turn and is then steered into it like any other (so its
//     receipt says what happened); a cancel ends it interrupted at once,
//     without the CLI seeing it. If the CLI never becomes ready, the session ends with a
//     fatal Error (code start_failed) and Exited, and the held turn, which
//     never started, has no event: the host delivers its input again.
//   - Send returns the turn's id in its Delivery, and every event of the
//     turn carries that id: TurnStarted first, then AssistantDelta,
//     ToolCall, Approval, Usage and Error events, then exactly one
//     TurnCompleted (completed, interrupted or failed), then AwaitingInput
//     unless the session is closing.
//   - A turn while another runs fails with ErrTurnRunning. Urgent input
//     joins the running turn (DeliverySteered) when the CLI declares steer,
//     and otherwise starts a turn when none runs.
//   - A steer's receipt is honest. DeliverySteered means the CLI took the
//     text into the running turn before that turn's end was observed, so
//     the turn's TurnCompleted comes after the receipt and covers the text;
//     a backend holds back an end it sees while a steer is on its way. Urgent
//     input that comes after the end (or that the CLI refuses because its
//     turn just ended) starts a new turn: DeliveryStarted with the new
//     turn's id, after the old turn's TurnCompleted. Urgent input for a
//     turn being cancelled, or that cannot reach the CLI, fails (for a turn
//     being cancelled, with ErrTurnRunning), and the host queues it for the
//     next turn.
//   - A cancel (CLI declares interrupt) answers DeliveryCancelled, and the
//     turn then ends interrupted; with no turn running it answers
//     DeliveryNoTurn.
//   - When the CLI's process dies on its own, the session emits a fatal
//     Error, fails the running turn, then emits Exited: the host opens a
//     new session and delivers the turn's messages again.
//   - Exited is the last event. Close emits it (the SDK does if a backend
//     forgets); when Close returns, every process the session started is
//     gone.
//   - Input.TranscriptPath, when set, is the file the turn's output is
//     written to, as well as to the events.
//
// Emit never blocks for long, so it is safe to call under the session's own
// lock, which is the simplest way to keep the order right.
//
// # Capabilities
//
// Each CLI in Describe lists its capabilities: CapPersistent (one live CLI
// session across turns), CapSteer (urgent input joins a running turn),
// CapInterrupt (a running turn can be cancelled), CapResume (SessionReady's
// RuntimeSessionID can reopen the conversation after a restart),
// CapApprovals and CapUsage. Declare only what the backend does: the host
// never uses an undeclared capability, and a Send that needs one fails
// with ErrUnsupported. A CLI named AnyCLI makes the backend a fallback for
// every CLI. Optional Go behaviour is an optional interface, found by type
// assertion: a Shutdowner is told when the plugin stops.
//
// # Errors
//
// Errors returned from OpenSession and Send wrap the sentinels in this
// package, with detail: fmt.Errorf("%w: unknown CLI %q", ErrInvalidConfig,
// name). They travel as gRPC status codes, and the host client maps them
// back, so errors.Is(err, sdk.ErrTurnRunning) holds on the host.
// OpenSession answers ErrInvalidConfig for a request it cannot serve (an
// unknown CLI, an empty command). What goes wrong during a turn is not a
// Send error: it is an Error event or a failed TurnCompleted.
//
// # Processes
//
// A backend owns the processes it starts and must leave none behind. Start
// each CLI in a process group of its own and tag it with a
// plugin.ProcessTag: children inherit the tag, so ProcessTag.Kill finds
// every process of a session or turn, including those that moved to a
// session of their own. The host kills anything that still carries its
// plugin's instance token when a plugin dies, but a backend should not
// rely on it.
//
// Give every process the environment plugin.ChildEnv builds, never
// os.Environ(): the plugin's own environment holds the go-plugin
// handshake, which a CLI must not inherit (a `tthost` run in a turn would
// take it for a plugin launch), and ChildEnv adds the session's Env on
// top. plugin.StartProcess does all of this:
//
//	p, err := plugin.StartProcess(plugin.ProcessConfig{Command: cfg.Command, Dir: cfg.Workdir, Env: cfg.Env})
//
// # What Serve takes care of
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
//
// # Versioning
//
// ProtocolVersion is the contract's major version: the go-plugin protocol
// version and the proto package (tthost.backend.v1). Within a major
// version the contract only grows, announced by new capabilities and new
// optional fields, so a plugin built with an older SDK keeps working with
// a newer host. A new major version is served beside the old one, so one
// plugin binary works with hosts on either side of the change; a plugin
// and a host without a common version refuse each other with an error
// naming both. Version is the SDK's own semantic version, reported in
// Describe; Description.Version is the plugin's.
//
// # Testing
//
// Drive the backend in-process with sdktest.Recorder as the event sink,
// and prove the built binary with the conformance suite, which runs it the
// way the host does:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Target{Path: sdktest.Build(t, ".", "tthost-backend-mycli")})
//	}
//
// Target also says which CLI command the backend drives (Command, the
// suite's one-shot stand-in by default) and which prompts make it run long
// or fail (Prompts).
//
// `tthost plugin conformance NAME|PATH --command "..."` runs the same
// suite from the command line. sdktest.TrackProcesses proves a test left
// no process behind.
//
// # Debugging
//
// Run by hand, a plugin binary explains itself. `plugin --describe` prints
// its Description as JSON. `plugin --debug` (or TTHOST_PLUGIN_DEBUG=1)
// serves it in debug mode, for a debugger:
//
//	dlv exec ./tthost-backend-mybackend -- --debug
//
// It prints TTHOST_REATTACH_PLUGINS='{...}' (see ReattachEnv); a host
// started with that variable uses the running plugin instead of launching
// one, so breakpoints in the backend are hit by a real agent's turns.
// Debug mode has no TLS and no checksum: it is for development only.
package sdk
