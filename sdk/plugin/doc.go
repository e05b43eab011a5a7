// Package plugin is the plugin side of the tthost SDK: Serve, which a
// plugin's main calls, and the pieces a backend is built from, so that a
// backend's own code is only what differs between CLIs.
//
// # Serving
//
// Serve performs the go-plugin handshake, serves the backend, handles
// --describe and --debug, guards stdout and closes every session before the
// plugin exits. Logger is the plugin's logger (JSON on stderr, or the
// detached log: see below).
//
// # Surviving the host: the reattach window
//
// A host that supports reattach launches the plugin with
// TTHOST_PLUGIN_REATTACH_WINDOW_MS (sdk.ReattachWindowEnv) set. Without
// it (or with 0) the plugin stops as soon as its host is gone and a host
// that stops reading a session's events has that session's running turn
// cancelled after wire.ResubscribeGrace, as it always did. With a window,
// a backend gets the following for free, without any code of its own.
//
// The plugin is attached while a host talks to it. It detaches when the
// process that launched it dies (the plugin notices that its parent
// changed), or when every Events stream a host had open broke (not ended
// after the session's Exited) and no new one opened within the
// resubscribe grace (two seconds): a host that died or froze, whose
// connection keepalive dropped. A plugin whose launching host died and
// that has no open session has nothing to keep and stops at once, as
// before.
//
// While detached, nothing is cancelled: sessions, their CLIs and their
// running turns go on, and every event is numbered and buffered as usual.
// Each session keeps its last 8192 events (historySize); past that bound
// the oldest are overwritten. A host that comes back asks for the events
// after the last seq it consumed; if some were overwritten it gets
// OUT_OF_RANGE, or, when it sets allow_gap, the events from the oldest
// still buffered, and sees the gap in the seqs. Logs go to the file named
// by TTHOST_PLUGIN_DETACHED_LOG (sdk.DetachedLogEnv; appended, created
// 0600) from the moment the plugin first detaches to its exit, since no
// host reads its stderr any more; the switch applies to Logger and every
// logger derived from it, not to one given with WithLogger.
//
// A host reattaches by calling Describe, OpenSession or Events: the
// window stops ("host reattached" is logged with how long the plugin was
// detached). A later loss detaches it again with a fresh window. If the
// window runs out first ("reattach window expired"), the plugin closes
// every open session gracefully (the running turn may finish, within a
// budget of a few seconds), immediately when that fails, calls the
// backend's Shutdown, and exits 0: no process outlives the window. SIGTERM
// or the host's Shutdown stop the plugin at any time, as before.
//
// For this to work a backend must not:
//
//   - exit, or stop or kill its CLIs, because the plugin's stdin, stdout
//     or stderr broke, or because a write to them failed: they belong to
//     the host that died;
//   - treat the loss of the host as a reason to cancel work or close a
//     session: the SDK decides that, and it keeps work running;
//   - write to stdout (it carries go-plugin's handshake), or log other
//     than through Logger;
//   - keep state that only the host that launched it knows, or that a
//     new host could not rebuild from Describe, the session ids it
//     recorded and the sessions' events;
//   - depend on the parent pid or on TTHOST_PLUGIN_HOST_PID naming a live
//     process, or send signals to its parent.
//
// # Building a backend
//
// A backend that drives a CLI needs the same four things whatever the CLI
// is; each is here once:
//
//   - Process: the CLI's process, started by StartProcess in a process
//     group of its own, tagged with a ProcessTag, with the environment
//     ChildEnv builds (the plugin's without go-plugin's handshake, plus
//     the session's Env). It gives a stdin writer safe for concurrent use,
//     the output (stdout, and stderr unless it goes elsewhere), reaping
//     (Done, Wait, ExitInfo), and a Close that is graceful then immediate:
//     stdin closed, SIGTERM to the group, a grace, then SIGKILL to the
//     group and to everything still carrying the tag. When the CLI exits,
//     what it left behind is killed too. No process outlives it.
//   - LineReader: the CLI's output as lines of valid UTF-8, each bounded
//     in length, with a clear error for a line that had to be cut.
//   - Transcript: a turn's log file (Input.TranscriptPath), opened before
//     the CLI gets the turn, buffered, flushed, and harmless when no path
//     is given.
//   - Session: the life cycle of a session, an sdk.Session driven by a
//     Driver that says only how this CLI starts, takes a turn, takes
//     steered input, cancels and stops. The Session keeps the contract:
//     turn ids, one turn at a time, events in order, exactly one
//     TurnCompleted per turn, input sent before the CLI is ready, an
//     honest receipt for steered input, Close(graceful|immediate), Exited
//     last.
//
// A persistent backend for a line-oriented REPL is then about a hundred
// lines: docs/tutorial in the tthost repository is one, and
// docs/plugin-authoring.md builds it step by step.
//
//	func (backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
//		p, err := plugin.StartProcess(plugin.ProcessConfig{Command: "exec " + cfg.Command, Dir: cfg.Workdir, Env: cfg.Env})
//		if err != nil {
//			return nil, fmt.Errorf("%w: %v", sdk.ErrInvalidConfig, err)
//		}
//		c := &repl{p: p, lines: plugin.NewLineReader(p.Output(), 8<<20)}
//		c.s = plugin.NewSession(events, plugin.Driver{
//			Start:     c.waitReady, // reads lines until the REPL says it is ready
//			StartTurn: c.writeLine, // the prompt, as one line
//			Steer:     c.writeLine, // one more line: the turn ends after its answer too
//			Cancel:    func(context.Context, *plugin.Turn) error { return p.Signal(syscall.SIGINT) },
//			Stop:      p.Close,
//		})
//		return c.s, nil
//	}
//
// The driver's reader turns lines into the running turn's output
// (Session.Running, Turn.Output) and recognises the end of an answer
// (Turn.Answered); when the output ends, Session.Lost reports the CLI's
// death.
package plugin
