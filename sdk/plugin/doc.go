// Package plugin is the plugin side of the tthost SDK: Serve, which a
// plugin's main calls, and the pieces a backend is built from, so that a
// backend's own code is only what differs between CLIs.
//
// # Serving
//
// Serve performs the go-plugin handshake, serves the backend, handles
// --describe and --debug, guards stdout and closes every session before the
// plugin exits. Logger is the plugin's logger (JSON on stderr).
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
