package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// SendOptions are `tthost send`'s arguments.
type SendOptions struct {
	F       *Factory
	Agent   string
	Message string
	Query   bool
	Info    bool
	Ack     bool
	Urgent  bool
}

// NewCmdSend builds `tthost send AGENT MESSAGE`.
func NewCmdSend(f *Factory, runF func(context.Context, *SendOptions) error) *cobra.Command {
	opts := &SendOptions{F: f}
	cmd := &cobra.Command{
		Use:   "send AGENT MESSAGE",
		Short: "Send a message to an agent (or the supervisor)",
		Long: `send puts a message in an agent's inbox, as tt send does. Without a flag the
message is a task (actionable work); --query asks a question, --info is an
FYI, and --ack confirms ("received", "approved", "thanks",
"rejected: reason"; anything else is a plain acknowledgement).

--urgent puts the message on the agent's urgent list instead: a tthost
worker steers it into the running turn, or starts a turn with it first.

Inside an agent (TINYTOWN_AGENT_ID set) the sender is that agent, else the
supervisor. AGENT may be a name, nickname, label, short id, id, or
supervisor / conductor. The words of MESSAGE are joined with spaces.`,
		Example: `  tthost send backend "add a /health endpoint"
  tthost send reviewer --query "is the schema final?"
  tthost send supervisor --info "finished the migration"
  tthost send backend --urgent --query "stop: are you editing main.go?"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Errorf("send needs AGENT and MESSAGE (got %d argument(s))\nRun '%s --help' for usage.", len(args), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent, opts.Message = args[0], strings.Join(args[1:], " ")
			if n := btoi(opts.Query) + btoi(opts.Info) + btoi(opts.Ack); n > 1 {
				return usageError{errors.New("use only one of --query, --info and --ack")}
			}
			return dispatch(cmd, opts, runF, sendRun)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Query, "query", false, "send a question (query)")
	fl.BoolVar(&opts.Info, "info", false, "send an FYI (informational)")
	fl.BoolVar(&opts.Ack, "ack", false, "send a confirmation")
	fl.BoolVar(&opts.Urgent, "urgent", false, "deliver on the urgent list, ahead of the inbox")
	return cmd
}

func sendRun(ctx context.Context, opts *SendOptions) error {
	f := opts.F
	if strings.TrimSpace(opts.Message) == "" {
		return usageError{errors.New("the MESSAGE must not be empty")}
	}
	from, err := agentIDFromEnv(f)
	if err != nil {
		return err
	}
	if from == "" {
		from = town.SupervisorID
	}
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	r, err := resolveAgent(ctx, store, opts.Agent)
	if err != nil {
		return err
	}
	var msg *town.Message
	switch {
	case opts.Query:
		msg = town.NewQuery(from, r.ID, opts.Message)
	case opts.Info:
		msg = town.NewInfo(from, r.ID, opts.Message)
	case opts.Ack:
		msg = town.NewAck(from, r.ID, opts.Message)
	default:
		msg = town.NewTask(from, r.ID, opts.Message)
	}
	where := "in its inbox"
	if opts.Urgent {
		where = "on its urgent list (ahead of its inbox)"
		err = store.SendUrgent(ctx, msg)
	} else {
		err = store.Send(ctx, msg)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "📤 Sent %s %s to %s, %s\n", msg.Type, msg.ID, resolvedLabel(r), where)
	if r.Agent != nil && r.Agent.State.Terminal() {
		fmt.Fprintf(f.IO.ErrOut, "note: %s is %s: the message waits until a worker serves it (`tthost spawn` a new agent, or run `tthost agent-loop`)\n", r.Agent.Name, r.Agent.State)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
