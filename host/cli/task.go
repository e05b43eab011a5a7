package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// NewCmdTask builds `tthost task` and its subcommands.
func NewCmdTask(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Show and complete tasks",
	}
	cmd.AddCommand(
		NewCmdTaskCurrent(f, nil),
		NewCmdTaskComplete(f, nil),
		NewCmdTaskShow(f, nil),
		NewCmdTaskList(f, nil),
	)
	return cmd
}

// TaskJSON is a task as the task commands print it with --json.
type TaskJSON struct {
	ID             string   `json:"id"`
	Description    string   `json:"description"`
	State          string   `json:"state"`
	Tags           []string `json:"tags"`
	AssignedTo     string   `json:"assigned_to,omitempty"`
	AssignedToName string   `json:"assigned_to_name,omitempty"`
	CreatedAt      string   `json:"created_at,omitempty"`
	UpdatedAt      string   `json:"updated_at,omitempty"`
	StartedAt      string   `json:"started_at,omitempty"`
	CompletedAt    string   `json:"completed_at,omitempty"`
	Result         string   `json:"result,omitempty"`
	ParentID       string   `json:"parent_id,omitempty"`
	Problems       []string `json:"problems,omitempty"`
}

func taskJSON(t *town.Task, names *agentNames) TaskJSON {
	j := TaskJSON{
		ID: t.ID, Description: t.Description, State: string(t.State), Tags: t.Tags,
		AssignedTo: t.AssignedTo, CreatedAt: jsonTime(t.CreatedAt), UpdatedAt: jsonTime(t.UpdatedAt),
		StartedAt: jsonTime(t.StartedAt), CompletedAt: jsonTime(t.CompletedAt),
		Result: t.Result, ParentID: t.ParentID, Problems: problems(t.Problems),
	}
	if t.AssignedTo != "" && names != nil {
		j.AssignedToName = names.name(t.AssignedTo)
	}
	return j
}

func printTask(w io.Writer, t TaskJSON) {
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "   %-13s %s\n", k+":", v)
		}
	}
	fmt.Fprintf(w, "📋 Task %s\n", t.ID)
	line("State", t.State)
	if t.AssignedTo != "" {
		line("Assigned to", fmt.Sprintf("%s (%s)", t.AssignedToName, t.AssignedTo))
	}
	if len(t.Tags) > 0 {
		line("Tags", strings.Join(t.Tags, ", "))
	}
	line("Created", t.CreatedAt)
	line("Updated", t.UpdatedAt)
	line("Started", t.StartedAt)
	line("Completed", t.CompletedAt)
	line("Parent", t.ParentID)
	line("Result", t.Result)
	fmt.Fprintf(w, "   Description:\n")
	for l := range strings.SplitSeq(t.Description, "\n") {
		fmt.Fprintf(w, "     %s\n", l)
	}
	for _, p := range t.Problems {
		fmt.Fprintf(w, "   ⚠️  %s\n", p)
	}
}

// TaskCurrentOptions are `tthost task current`'s arguments.
type TaskCurrentOptions struct {
	F     *Factory
	Agent string
	JSON  bool
}

// NewCmdTaskCurrent builds `tthost task current [AGENT]`.
func NewCmdTaskCurrent(f *Factory, runF func(context.Context, *TaskCurrentOptions) error) *cobra.Command {
	opts := &TaskCurrentOptions{F: f}
	cmd := &cobra.Command{
		Use:   "current [AGENT]",
		Short: "Show the task an agent is working on",
		Long: `current shows AGENT's current task: the one its worker is tracking, else the
only unfinished task assigned to it. Inside an agent, AGENT defaults to the
agent itself (TINYTOWN_AGENT_ID), so ` + "`tthost task current`" + ` answers "what am I
working on?".`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("task current takes at most one AGENT (got %d arguments)", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Agent = args[0]
			}
			return dispatch(cmd, opts, runF, taskCurrentRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON (null when there is no current task)")
	return cmd
}

func taskCurrentRun(ctx context.Context, opts *TaskCurrentOptions) error {
	f := opts.F
	ref := opts.Agent
	if ref == "" {
		id, err := agentIDFromEnv(f)
		if err != nil {
			return err
		}
		if id == "" {
			return usageError{fmt.Errorf("no AGENT given and %s is not set: run `tthost task current AGENT`", agentIDEnv)}
		}
		ref = id
	}
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	a, err := resolveWorker(ctx, store, ref, "work on")
	if err != nil {
		return err
	}
	t, err := store.CurrentTaskFor(ctx, a.ID)
	if err != nil {
		return err
	}
	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	if opts.JSON {
		if t == nil {
			return printJSON(f.IO.Out, nil)
		}
		return printJSON(f.IO.Out, taskJSON(t, names))
	}
	if t == nil {
		fmt.Fprintf(f.IO.Out, "No current task for %s.\n", label(a))
		return nil
	}
	printTask(f.IO.Out, taskJSON(t, names))
	if !t.State.Terminal() {
		fmt.Fprintf(f.IO.Out, "   Complete with: tthost task complete %s --result \"what was done\"\n", t.ID)
	}
	return nil
}

// TaskCompleteOptions are `tthost task complete`'s arguments.
type TaskCompleteOptions struct {
	F      *Factory
	TaskID string
	Result string
	JSON   bool
}

// TaskCompletion is `tthost task complete --json`.
type TaskCompletion struct {
	Task         TaskJSON `json:"task"`
	WasFinished  bool     `json:"was_finished"`
	Counted      bool     `json:"counted"`
	AgentUpdated bool     `json:"agent_updated"`
}

// NewCmdTaskComplete builds `tthost task complete TASK_ID`.
func NewCmdTaskComplete(f *Factory, runF func(context.Context, *TaskCompleteOptions) error) *cobra.Command {
	opts := &TaskCompleteOptions{F: f}
	cmd := &cobra.Command{
		Use:   "complete TASK_ID",
		Short: "Mark a task completed",
		Long: `complete marks the task completed with --result, as tt task complete does:
the assigned agent's current task is cleared and its tasks_completed count
goes up by one (once: completing a finished task again changes no count).`,
		Example: `  tthost task complete 0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21 --result "added /health and its test"`,
		Args:    exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.TaskID = args[0]
			return dispatch(cmd, opts, runF, taskCompleteRun)
		},
	}
	cmd.Flags().StringVar(&opts.Result, "result", "Completed", "what was done")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func taskCompleteRun(ctx context.Context, opts *TaskCompleteOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	id, err := resolveTaskID(ctx, store, opts.TaskID)
	if err != nil {
		return err
	}
	c, err := store.CompleteTask(ctx, id, opts.Result)
	if errors.Is(err, town.ErrTaskNotFound) {
		return fmt.Errorf("%w\nCheck the id with `tthost task current` or `tthost task list`", err)
	}
	if err != nil {
		return err
	}
	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	res := TaskCompletion{
		Task: taskJSON(c.Task, names), WasFinished: c.WasTerminal,
		Counted: c.AgentUpdated && !c.WasTerminal, AgentUpdated: c.AgentUpdated,
	}
	if !c.WasTerminal {
		ev := town.NewEvent(town.EventTaskCompleted, "Task completed: "+oneLine(c.Task.Result, 100))
		ev.TaskID, ev.AgentID = c.Task.ID, c.Task.AssignedTo
		emitBestEffort(ctx, f, store, ev)
	}
	if opts.JSON {
		return printJSON(f.IO.Out, res)
	}
	out := f.IO.Out
	fmt.Fprintf(out, "✅ Task %s completed: %s\n", c.Task.ID, oneLine(c.Task.Result, 100))
	switch {
	case c.WasTerminal:
		fmt.Fprintf(out, "   It was already finished, so no agent's count changed.\n")
	case res.Counted:
		n := ""
		if a, err := store.GetAgent(ctx, c.Task.AssignedTo); err == nil {
			n = fmt.Sprintf(" (now %d)", a.TasksCompleted)
		}
		fmt.Fprintf(out, "   Counted for %s: tasks_completed +1%s.\n", names.name(c.Task.AssignedTo), n)
	case c.Task.AssignedTo != "":
		fmt.Fprintf(out, "   Its agent %s no longer exists, so no count changed.\n", c.Task.AssignedTo)
	default:
		fmt.Fprintf(out, "   It was not assigned to an agent, so no count changed.\n")
	}
	return nil
}

// TaskShowOptions are `tthost task show`'s arguments.
type TaskShowOptions struct {
	F      *Factory
	TaskID string
	JSON   bool
}

// NewCmdTaskShow builds `tthost task show TASK_ID`.
func NewCmdTaskShow(f *Factory, runF func(context.Context, *TaskShowOptions) error) *cobra.Command {
	opts := &TaskShowOptions{F: f}
	cmd := &cobra.Command{
		Use:   "show TASK_ID",
		Short: "Show one task",
		Args:  exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.TaskID = args[0]
			return dispatch(cmd, opts, runF, taskShowRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func taskShowRun(ctx context.Context, opts *TaskShowOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	id, err := resolveTaskID(ctx, store, opts.TaskID)
	if err != nil {
		return err
	}
	t, err := store.GetTask(ctx, id)
	if errors.Is(err, town.ErrTaskNotFound) {
		return fmt.Errorf("%w: %s (`tthost task list` shows the tasks)", town.ErrTaskNotFound, id)
	}
	if err != nil {
		return err
	}
	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(f.IO.Out, taskJSON(t, names))
	}
	printTask(f.IO.Out, taskJSON(t, names))
	return nil
}

// TaskListOptions are `tthost task list`'s flags.
type TaskListOptions struct {
	F    *Factory
	JSON bool
}

// NewCmdTaskList builds `tthost task list`.
func NewCmdTaskList(f *Factory, runF func(context.Context, *TaskListOptions) error) *cobra.Command {
	opts := &TaskListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every task of the town, oldest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, taskListRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func taskListRun(ctx context.Context, opts *TaskListOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	tasks, err := store.ListTasks(ctx)
	if err != nil {
		return err
	}
	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	list := make([]TaskJSON, 0, len(tasks))
	for _, t := range tasks {
		list = append(list, taskJSON(t, names))
	}
	if opts.JSON {
		return printJSON(f.IO.Out, list)
	}
	if len(tasks) == 0 {
		fmt.Fprintln(f.IO.Out, "No tasks. Create one with `tthost assign AGENT \"...\"` or `tthost backlog add \"...\"`.")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(f.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tASSIGNED TO\tUPDATED\tDESCRIPTION")
	for _, t := range tasks {
		who := "-"
		if t.AssignedTo != "" {
			who = names.name(t.AssignedTo)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortTask(t.ID), t.State, who, ago(t.UpdatedAt, now), oneLine(t.Description, 60))
	}
	return tw.Flush()
}
