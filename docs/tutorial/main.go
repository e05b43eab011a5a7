// Command tthost-backend-mycli is the backend plugin that
// docs/plugin-authoring.md builds, step by step: it keeps one mycli, a
// line-oriented REPL, alive per session. A turn is a line of prompt in, and
// lines out until mycli ends its answer. It lives in a module of its own,
// built only against github.com/tthost/tthost/sdk, as a third party's
// plugin would.
package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// mycli says ">>> ready" once started, and ends each answer with a line
// ">>> ok", ">>> error REASON" or ">>> interrupted" (after a Ctrl-C).
const marker = ">>> "

func main() { plugin.Serve(backend{}) }

type backend struct{}

func (backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "mycli",
		Version: "0.2.0",
		Summary: "keeps one mycli REPL per session: a turn is a line in, the answer's lines out",
		CLIs: []sdk.CLI{{
			Name:         "mycli",
			Capabilities: []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt},
		}},
	}, nil
}

func (backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName != "mycli" {
		return nil, fmt.Errorf("%w: this backend serves mycli, not %q", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, fmt.Errorf("%w: no command configured for mycli", sdk.ErrInvalidConfig)
	}
	// Its own process group, tagged, with the session's environment; exec,
	// so that mycli itself gets the Ctrl-C of a cancel.
	p, err := plugin.StartProcess(plugin.ProcessConfig{Command: "exec " + cfg.Command, Dir: cfg.Workdir, Env: cfg.Env})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sdk.ErrInvalidConfig, err)
	}
	c := &repl{p: p, lines: plugin.NewLineReader(p.Output(), 8<<20)}
	c.s = plugin.NewSession(events, plugin.Driver{
		Start:     c.waitReady,
		StartTurn: c.writeLine,
		Steer:     c.writeLine, // one more line: the turn ends after its answer too
		Cancel:    func(context.Context, *plugin.Turn) error { return p.Signal(syscall.SIGINT) },
		Stop:      p.Close,
	})
	return c.s, nil
}

// repl is one session's mycli.
type repl struct {
	p     *plugin.Process
	lines *plugin.LineReader
	s     *plugin.Session
}

// waitReady waits for mycli's ready line, then follows its output.
func (c *repl) waitReady(context.Context) (sdk.SessionReady, error) {
	for {
		line, err := c.lines.Next()
		if err != nil {
			c.p.Kill() // if it is still there
			<-c.p.Done()
			return sdk.SessionReady{}, fmt.Errorf("mycli ended before it was ready (%s)", c.p.Status())
		}
		if line == marker+"ready" {
			go c.read()
			return sdk.SessionReady{}, nil
		}
	}
}

// writeLine gives mycli a prompt: one line, as mycli reads them.
func (c *repl) writeLine(_ context.Context, _ *plugin.Turn, text string) error {
	_, err := c.p.WriteString(strings.ReplaceAll(text, "\n", " ") + "\n")
	return err
}

// read turns mycli's lines into the running turn's output, and its end
// markers into the end of an answer.
func (c *repl) read() {
	for {
		line, err := c.lines.Next()
		if err != nil && line == "" {
			break // the output ended: mycli is gone
		}
		t := c.s.Running()
		end, isEnd := strings.CutPrefix(line, marker)
		switch {
		case t == nil: // between turns: nobody's output
		case !isEnd:
			t.Output(line + "\n")
		case end == "ok":
			t.Answered(sdk.TurnCompleted{Status: sdk.StatusCompleted})
		case end == "interrupted":
			t.Answered(sdk.TurnCompleted{Status: sdk.StatusInterrupted})
		default:
			t.Answered(sdk.TurnCompleted{Status: sdk.StatusFailed, Error: strings.TrimPrefix(end, "error ")})
		}
	}
	<-c.p.Done()
	c.s.Lost(nil) // a fatal Error, the running turn failed, Exited
}
