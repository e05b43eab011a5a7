package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// AssignOptions are `tthost assign`'s arguments.
type AssignOptions struct {
	F           *Factory
	Agent       string
	Description string
}

// NewCmdAssign builds `tthost assign AGENT TASK`.
func NewCmdAssign(f *Factory, runF func(context.Context, *AssignOptions) error) *cobra.Command {
	opts := &AssignOptions{F: f}
	return &cobra.Command{
		Use:   "assign AGENT TASK",
		Short: "Create a task, assign it to an agent and tell the agent",
		Long: `assign creates a task assigned to AGENT and puts a task_assign message in the
agent's inbox, as tt assign does. The agent completes it with
` + "`tthost task complete TASK_ID`" + `.`,
		Example: `  tthost assign backend "add a /health endpoint with a test"`,
		Args:    exactArgs(2, "AGENT and TASK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent, opts.Description = args[0], args[1]
			return dispatch(cmd, opts, runF, assignRun)
		},
	}
}

func assignRun(ctx context.Context, opts *AssignOptions) error {
	f := opts.F
	if strings.TrimSpace(opts.Description) == "" {
		return usageError{errors.New("the TASK description must not be empty")}
	}
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	r, err := resolveAgent(ctx, store, opts.Agent)
	if err != nil {
		return err
	}
	t, msg, err := store.Assign(ctx, r.ID, opts.Description, nil)
	if err != nil {
		return err
	}
	ev := town.NewEvent(town.EventTaskAssigned, fmt.Sprintf("Task assigned to %s: %s", resolvedLabel(r), oneLine(t.Description, 80)))
	ev.AgentID, ev.TaskID = r.ID, t.ID
	emitBestEffort(ctx, f, store, ev)
	fmt.Fprintf(f.IO.Out, "📋 Assigned task %s to %s; message %s\n", t.ID, resolvedLabel(r), msg.ID)
	if r.Agent != nil && r.Agent.State.Terminal() {
		fmt.Fprintf(f.IO.ErrOut, "note: %s is %s: the task waits in its inbox until a worker serves it\n", r.Agent.Name, r.Agent.State)
	}
	return nil
}
