package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// NewCmdBacklog builds `tthost backlog` and its subcommands.
func NewCmdBacklog(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backlog",
		Short: "Tasks that wait for an agent to claim them",
		Long: `The backlog holds tasks nobody is assigned to yet. Idle agents see the ones
that match their role and claim them with ` + "`tthost backlog claim`" + `.`,
	}
	cmd.AddCommand(
		NewCmdBacklogAdd(f, nil),
		NewCmdBacklogList(f, nil),
		NewCmdBacklogClaim(f, nil),
		NewCmdBacklogAssignAll(f, nil),
		NewCmdBacklogRemove(f, nil),
	)
	return cmd
}

// BacklogAddOptions are `tthost backlog add`'s arguments.
type BacklogAddOptions struct {
	F           *Factory
	Description string
	Tags        string
}

// NewCmdBacklogAdd builds `tthost backlog add DESC`.
func NewCmdBacklogAdd(f *Factory, runF func(context.Context, *BacklogAddOptions) error) *cobra.Command {
	opts := &BacklogAddOptions{F: f}
	cmd := &cobra.Command{
		Use:     "add DESCRIPTION",
		Short:   "Add a task to the backlog",
		Example: `  tthost backlog add "write the API docs" --tags docs,api`,
		Args:    exactArgs(1, "the task's DESCRIPTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Description = args[0]
			return dispatch(cmd, opts, runF, backlogAddRun)
		},
	}
	cmd.Flags().StringVar(&opts.Tags, "tags", "", "comma-separated tags (they help agents of a role find the task)")
	return cmd
}

func backlogAddRun(ctx context.Context, opts *BacklogAddOptions) error {
	f := opts.F
	if strings.TrimSpace(opts.Description) == "" {
		return usageError{errors.New("the task's DESCRIPTION must not be empty")}
	}
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	t, err := store.BacklogAdd(ctx, opts.Description, town.SplitTags(opts.Tags))
	if err != nil {
		return err
	}
	n, err := store.Client().LLen(ctx, store.Keys().Backlog()).Result()
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "📥 Added task %s to the backlog (%d waiting)\n", t.ID, n)
	return nil
}

// BacklogListOptions are `tthost backlog list`'s flags.
type BacklogListOptions struct {
	F    *Factory
	JSON bool
}

// BacklogItem is one backlog entry (--json); Task is nil when its record
// is gone.
type BacklogItem struct {
	TaskID string    `json:"task_id"`
	Task   *TaskJSON `json:"task"`
}

// NewCmdBacklogList builds `tthost backlog list`.
func NewCmdBacklogList(f *Factory, runF func(context.Context, *BacklogListOptions) error) *cobra.Command {
	opts := &BacklogListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backlog in order",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, backlogListRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func backlogListRun(ctx context.Context, opts *BacklogListOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	entries, err := store.BacklogList(ctx)
	if err != nil {
		return err
	}
	items := make([]BacklogItem, 0, len(entries))
	for _, e := range entries {
		it := BacklogItem{TaskID: e.TaskID}
		if e.Task != nil {
			j := taskJSON(e.Task, nil)
			it.Task = &j
		}
		items = append(items, it)
	}
	if opts.JSON {
		return printJSON(f.IO.Out, items)
	}
	if len(items) == 0 {
		fmt.Fprintln(f.IO.Out, "The backlog is empty. Add a task with `tthost backlog add \"...\"`.")
		return nil
	}
	fmt.Fprintf(f.IO.Out, "📚 Backlog: %d %s\n", len(items), plural(len(items), "task", "tasks"))
	tw := tabwriter.NewWriter(f.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTAGS\tDESCRIPTION")
	for _, it := range items {
		if it.Task == nil {
			fmt.Fprintf(tw, "%s\t-\t(the task's record is gone: `tthost backlog remove %s`)\n", it.TaskID, it.TaskID)
			continue
		}
		tags := strings.Join(it.Task.Tags, ",")
		if tags == "" {
			tags = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.TaskID, tags, oneLine(it.Task.Description, 70))
	}
	return tw.Flush()
}

// BacklogClaimOptions are `tthost backlog claim`'s arguments.
type BacklogClaimOptions struct {
	F      *Factory
	TaskID string
	Agent  string
}

// NewCmdBacklogClaim builds `tthost backlog claim TASK_ID AGENT`.
func NewCmdBacklogClaim(f *Factory, runF func(context.Context, *BacklogClaimOptions) error) *cobra.Command {
	opts := &BacklogClaimOptions{F: f}
	return &cobra.Command{
		Use:   "claim TASK_ID AGENT",
		Short: "Take a task out of the backlog and assign it to an agent",
		Long: `claim removes the task from the backlog atomically (only one claimer wins),
assigns it to AGENT and puts a task_assign message in the agent's inbox.`,
		Args: exactArgs(2, "TASK_ID and AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.TaskID, opts.Agent = args[0], args[1]
			return dispatch(cmd, opts, runF, backlogClaimRun)
		},
	}
}

func backlogClaimRun(ctx context.Context, opts *BacklogClaimOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	// The agent first: a typo must not take the task out of the backlog.
	r, err := resolveAgent(ctx, store, opts.Agent)
	if err != nil {
		return err
	}
	id, err := resolveTaskID(ctx, store, opts.TaskID)
	if err != nil {
		return err
	}
	t, _, err := store.BacklogClaim(ctx, id, r.ID)
	if errors.Is(err, town.ErrNotInBacklog) {
		return fmt.Errorf("task %s is not in the backlog (someone may have claimed it first): see `tthost backlog list`", id)
	}
	if err != nil {
		return err
	}
	ev := town.NewEvent(town.EventTaskAssigned, fmt.Sprintf("Backlog task claimed by %s: %s", resolvedLabel(r), oneLine(t.Description, 80)))
	ev.AgentID, ev.TaskID = r.ID, t.ID
	emitBestEffort(ctx, f, store, ev)
	fmt.Fprintf(f.IO.Out, "✋ %s claimed task %s: %s\n", resolvedLabel(r), t.ID, oneLine(t.Description, 80))
	return nil
}

// BacklogAssignAllOptions are `tthost backlog assign-all`'s arguments.
type BacklogAssignAllOptions struct {
	F     *Factory
	Agent string
}

// NewCmdBacklogAssignAll builds `tthost backlog assign-all AGENT`.
func NewCmdBacklogAssignAll(f *Factory, runF func(context.Context, *BacklogAssignAllOptions) error) *cobra.Command {
	opts := &BacklogAssignAllOptions{F: f}
	return &cobra.Command{
		Use:   "assign-all AGENT",
		Short: "Assign every backlog task to one agent",
		Args:  exactArgs(1, "AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			return dispatch(cmd, opts, runF, backlogAssignAllRun)
		},
	}
}

func backlogAssignAllRun(ctx context.Context, opts *BacklogAssignAllOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	r, err := resolveAgent(ctx, store, opts.Agent)
	if err != nil {
		return err
	}
	tasks, err := store.BacklogAssignAll(ctx, r.ID)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		ev := town.NewEvent(town.EventTaskAssigned, fmt.Sprintf("Backlog task assigned to %s: %s", resolvedLabel(r), oneLine(t.Description, 80)))
		ev.AgentID, ev.TaskID = r.ID, t.ID
		emitBestEffort(ctx, f, store, ev)
		fmt.Fprintf(f.IO.Out, "   %s %s\n", t.ID, oneLine(t.Description, 80))
	}
	fmt.Fprintf(f.IO.Out, "📋 Assigned %d backlog %s to %s\n", len(tasks), plural(len(tasks), "task", "tasks"), resolvedLabel(r))
	return nil
}

// BacklogRemoveOptions are `tthost backlog remove`'s arguments.
type BacklogRemoveOptions struct {
	F      *Factory
	TaskID string
}

// NewCmdBacklogRemove builds `tthost backlog remove TASK_ID`.
func NewCmdBacklogRemove(f *Factory, runF func(context.Context, *BacklogRemoveOptions) error) *cobra.Command {
	opts := &BacklogRemoveOptions{F: f}
	return &cobra.Command{
		Use:   "remove TASK_ID",
		Short: "Delete a task that is still in the backlog",
		Args:  exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.TaskID = args[0]
			return dispatch(cmd, opts, runF, backlogRemoveRun)
		},
	}
}

func backlogRemoveRun(ctx context.Context, opts *BacklogRemoveOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	id, err := resolveTaskID(ctx, store, opts.TaskID)
	if err != nil {
		return err
	}
	ok, err := store.BacklogRemove(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("task %s is not in the backlog: see `tthost backlog list`", id)
	}
	fmt.Fprintf(f.IO.Out, "🗑️  Removed task %s from the backlog\n", id)
	return nil
}
