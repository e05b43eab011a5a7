package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// EventsOptions are `tthost events`'s flags.
type EventsOptions struct {
	F       *Factory
	Agent   string
	Follow  bool
	JSON    bool
	Limit   int
	Until   string
	Timeout time.Duration
}

// NewCmdEvents builds `tthost events`.
func NewCmdEvents(f *Factory, runF func(context.Context, *EventsOptions) error) *cobra.Command {
	opts := &EventsOptions{F: f}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the town's events (or one agent's), and follow new ones",
		Long: `events prints the last -n events of the town's stream, or of one agent's
stream with --agent: time, type, agent and message. --json prints one
object per line: {"id", "event_type", "data"} where data is the event as
stored.

--follow keeps printing new events as they arrive. --until TYPE follows
until an event of that type is printed (the history shown counts too) and
then exits 0; with --timeout it gives up after that long and exits 1, so a
script can wait for, say, the end of an agent's turn without polling. Use
-n 0 to ignore the history.

Event types:
` + wrap(eventTypeList(), 78, "  "),
		Example: `  tthost events -n 20
  tthost events --agent backend --follow
  tthost events --agent backend -n 0 --until agent_turn_completed --timeout 5m`,
		Args: exactArgs(0, "no arguments (use --agent AGENT)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Limit < 0 {
				return usageError{fmt.Errorf("-n must be 0 or more, got %d", opts.Limit)}
			}
			if opts.Until != "" && !town.EventType(opts.Until).Known() {
				return usageError{fmt.Errorf("--until %q is not an event type; use one of: %s", opts.Until, eventTypeList())}
			}
			if opts.Timeout < 0 {
				return usageError{fmt.Errorf("--timeout must not be negative, got %v", opts.Timeout)}
			}
			if opts.Timeout > 0 && !opts.Follow && opts.Until == "" {
				return usageError{errors.New("--timeout only applies with --follow or --until")}
			}
			return dispatch(cmd, opts, runF, eventsRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Agent, "agent", "", "show this agent's events (name, nickname, short id or id)")
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new events")
	fl.BoolVar(&opts.JSON, "json", false, "print one JSON object per line")
	fl.IntVarP(&opts.Limit, "limit", "n", 50, "how many past events to show first")
	fl.StringVar(&opts.Until, "until", "", "follow until an event of this type, then exit 0")
	fl.DurationVar(&opts.Timeout, "timeout", 0, "stop following after this long (exit 1 if --until was not met)")
	return cmd
}

func eventTypeList() string {
	s := make([]string, len(town.EventTypes))
	for i, t := range town.EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// wrap breaks text at spaces into lines of at most width, each indented.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := indent
	for w := range strings.FieldsSeq(text) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}

// errUntilMet ends a follow once the --until event was printed.
var errUntilMet = errors.New("until event seen")

func eventsRun(ctx context.Context, opts *EventsOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	stream, where := store.Keys().Events(), "the town's events"
	if opts.Agent != "" {
		r, err := resolveAgent(ctx, store, opts.Agent)
		if err != nil {
			return err
		}
		stream, where = store.Keys().EventsAgent(r.ID), "the events of "+resolvedLabel(r)
	}
	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	p := &eventPrinter{w: f.IO.Out, json: opts.JSON, names: names}
	until := town.EventType(opts.Until)
	met := func(e town.EventEntry) bool { return until != "" && e.Type == string(until) }

	// History: the last -n entries, read forward from the entry before them
	// so the follow below continues exactly after the last one printed.
	after := ""
	if opts.Limit > 0 {
		after, err = entryBeforeLast(ctx, store, stream, opts.Limit)
		if err != nil {
			return err
		}
		entries, err := store.ReadEvents(ctx, stream, after, 0)
		if err != nil {
			return err
		}
		for _, e := range entries {
			after = e.ID
			if err := p.print(e); err != nil {
				return err
			}
			if met(e) {
				return nil
			}
		}
	} else if after, err = store.LastEventID(ctx, stream); err != nil {
		return err
	}
	if !opts.Follow && until == "" {
		return nil
	}

	fctx := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	err = store.FollowEvents(fctx, stream, after, func(e town.EventEntry) error {
		if err := p.print(e); err != nil {
			return err
		}
		if met(e) {
			return errUntilMet
		}
		return nil
	})
	switch {
	case errors.Is(err, errUntilMet):
		return nil
	case ctx.Err() != nil: // interrupted (SIGINT, SIGTERM, SIGHUP)
		if until != "" {
			return &exitError{code: 1, err: fmt.Errorf("interrupted before a %s event arrived in %s", until, where)}
		}
		return nil
	case fctx.Err() != nil: // --timeout
		if until != "" {
			return &exitError{code: 1, err: fmt.Errorf("no %s event in %s within %v: the agent may still be busy (look with `tthost status`), or wait longer with a bigger --timeout", until, where, opts.Timeout)}
		}
		return nil
	}
	return err
}

// entryBeforeLast is the id of the entry just before the last n of stream
// ("" when the stream has n entries or fewer): reading after it yields the
// last n.
func entryBeforeLast(ctx context.Context, store *town.Store, stream string, n int) (string, error) {
	msgs, err := store.Client().XRevRangeN(ctx, stream, "+", "-", int64(n)+1).Result()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", stream, err)
	}
	if len(msgs) <= n {
		return "", nil
	}
	return msgs[n].ID, nil
}

// eventPrinter writes entries for people or, with json, one object a line.
type eventPrinter struct {
	w     io.Writer
	json  bool
	names *agentNames
}

// EventLine is one line of `tthost events --json`.
type EventLine struct {
	ID        string          `json:"id"`
	EventType string          `json:"event_type"`
	Data      json.RawMessage `json:"data,omitempty"`
	Error     string          `json:"error,omitempty"` // the entry could not be read
}

func (p *eventPrinter) print(e town.EventEntry) error {
	if p.json {
		line := EventLine{ID: e.ID, EventType: e.Type}
		if e.Event != nil {
			b, err := e.Event.Marshal()
			if err != nil {
				line.Error = err.Error()
			} else {
				line.Data = b
			}
		} else if e.Err != nil {
			line.Error = e.Err.Error()
		}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	if e.Event == nil {
		_, err := fmt.Fprintf(p.w, "%-19s  %-22s  %-12s  (unreadable entry %s: %v)\n", "-", e.Type, "-", e.ID, e.Err)
		return err
	}
	ev := e.Event
	msg := ev.Message
	if ev.OldState != "" || ev.NewState != "" {
		msg += fmt.Sprintf(" [%s → %s]", orDash(ev.OldState), orDash(ev.NewState))
	}
	_, err := fmt.Fprintf(p.w, "%s  %-22s  %-12s  %s\n",
		ev.Timestamp.Local().Format("2006-01-02 15:04:05"), ev.Type, p.names.name(ev.AgentID), msg)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
