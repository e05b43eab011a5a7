package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// ListOptions are `tthost list`'s flags.
type ListOptions struct {
	F    *Factory
	JSON bool
}

// NewCmdList builds `tthost list`.
func NewCmdList(f *Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the town's agents with their state, queues and current task",
		Long: `list shows every agent of the town: name, nickname, short id, state, CLI,
completed rounds and tasks, messages waiting (inbox/urgent/in flight), the
current task and the age of the last heartbeat. ` + "`tthost status`" + ` shows the
same table under the town's name and Redis.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, listRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the agents as JSON")
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	store, err := opts.F.Store(ctx)
	if err != nil {
		return err
	}
	rows, err := agentRows(ctx, store)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(opts.F.IO.Out, rows)
	}
	printAgentTable(opts.F.IO.Out, rows, time.Now())
	return nil
}

// AgentRow is one agent as list and status show it (and --json prints it).
type AgentRow struct {
	ID                     string      `json:"id"`
	ShortID                string      `json:"short_id"`
	Name                   string      `json:"name"`
	Nickname               string      `json:"nickname,omitempty"`
	Label                  string      `json:"label"`
	Role                   string      `json:"role,omitempty"`
	State                  string      `json:"state"`
	CLI                    string      `json:"cli"`
	RoundsCompleted        uint64      `json:"rounds_completed"`
	TasksCompleted         uint64      `json:"tasks_completed"`
	Inbox                  int64       `json:"inbox"`
	Urgent                 int64       `json:"urgent"`
	InFlight               int64       `json:"in_flight"`
	StopRequested          bool        `json:"stop_requested"`
	CurrentTask            string      `json:"current_task,omitempty"`
	CurrentTaskDescription string      `json:"current_task_description,omitempty"`
	ParentAgentID          string      `json:"parent_agent_id,omitempty"`
	CreatedAt              string      `json:"created_at,omitempty"`
	LastHeartbeat          string      `json:"last_heartbeat,omitempty"`
	LastActiveAt           string      `json:"last_active_at,omitempty"`
	RuntimeSessionID       string      `json:"runtime_session_id,omitempty"`
	Problems               []string    `json:"problems,omitempty"`
	Activity               []string    `json:"activity,omitempty"`
	Runtime                *RuntimeRow `json:"runtime,omitempty"`
	// ServedBy names the worker holding the agent's lease: "host ID" for a
	// serve host, "pid N on HOST" for an agent-loop ("" when none does).
	ServedBy string `json:"served_by,omitempty"`
	// Wanted is true when the agent is registered for the serve hosts.
	Wanted    bool      `json:"wanted"`
	heartbeat time.Time // for the table's age column
}

// RuntimeRow is what serves an agent (town.Runtime), as `status` shows it.
type RuntimeRow struct {
	Backend    string `json:"backend"`
	Persistent bool   `json:"persistent"`
	Fallback   bool   `json:"fallback,omitempty"`
	Reason     string `json:"reason,omitempty"`
	SessionID  string `json:"session_id,omitempty"`
	SteerMode  string `json:"steer_mode,omitempty"`
	Worker     string `json:"worker,omitempty"`
	UpdatedAt  string `json:"updated_at,omitempty"`
}

func runtimeRow(r *town.Runtime) *RuntimeRow {
	if r == nil {
		return nil
	}
	return &RuntimeRow{
		Backend: r.Backend, Persistent: r.Persistent, Fallback: r.Fallback, Reason: r.Reason,
		SessionID: r.SessionID, SteerMode: r.SteerMode, Worker: r.Worker, UpdatedAt: jsonTime(r.UpdatedAt),
	}
}

// agentRows reads every agent with its queue lengths (one pipelined round
// trip) and current task.
func agentRows(ctx context.Context, store *town.Store) ([]*AgentRow, error) {
	agents, err := store.ListAgents(ctx)
	if err != nil {
		return nil, err
	}
	return rowsFor(ctx, store, agents)
}

func rowsFor(ctx context.Context, store *town.Store, agents []*town.Agent) ([]*AgentRow, error) {
	rows := make([]*AgentRow, 0, len(agents))
	if len(agents) == 0 {
		return rows, nil
	}
	tasks, err := store.ListTasks(ctx)
	if err != nil {
		return nil, err
	}
	k := store.Keys()
	type counts struct{ inbox, urgent, inflight *redis.IntCmd }
	cs := make([]counts, len(agents))
	if _, err := store.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range agents {
			cs[i] = counts{
				inbox:    p.LLen(ctx, k.Inbox(a.ID)),
				urgent:   p.LLen(ctx, k.Urgent(a.ID)),
				inflight: p.LLen(ctx, k.InFlight(a.ID)),
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read queue lengths: %w", err)
	}
	stops, err := stopFlags(ctx, store, agents)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(agents))
	for i, a := range agents {
		ids[i] = a.ID
	}
	owners, err := store.LeaseOwners(ctx, ids)
	if err != nil {
		return nil, err
	}
	wanted, _, err := store.WantedAgents(ctx)
	if err != nil {
		return nil, err
	}
	for i, a := range agents {
		r := &AgentRow{
			ID: a.ID, ShortID: a.ShortID(), Name: a.Name, Nickname: a.Nickname, Label: a.DisplayLabel(),
			Role: a.RoleID, State: string(a.State), CLI: a.CLI,
			RoundsCompleted: a.RoundsCompleted, TasksCompleted: a.TasksCompleted,
			Inbox: cs[i].inbox.Val(), Urgent: cs[i].urgent.Val(), InFlight: cs[i].inflight.Val(),
			StopRequested: stops[i],
			ParentAgentID: a.ParentAgentID, CreatedAt: jsonTime(a.CreatedAt),
			LastHeartbeat: jsonTime(a.LastHeartbeat), LastActiveAt: jsonTime(a.LastActiveAt),
			RuntimeSessionID: a.RuntimeSessionID, Problems: problems(a.Problems),
			heartbeat: a.LastHeartbeat,
		}
		if o, ok := owners[a.ID]; ok {
			r.ServedBy = servedBy(o)
		}
		_, r.Wanted = wanted[a.ID]
		if a.RawState != "" && a.RawState != string(a.State) {
			r.State = a.RawState // show what is stored, not tt's fallback
		}
		if t := currentTaskOf(a, tasks); t != nil {
			r.CurrentTask, r.CurrentTaskDescription = t.ID, t.Description
		} else if a.CurrentTask != "" {
			r.CurrentTask = a.CurrentTask // names a task that is gone
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// servedBy names a lease holder for people.
func servedBy(o town.LeaseOwner) string {
	if o.HostID != "" {
		return "host " + o.HostID
	}
	return fmt.Sprintf("pid %d on %s", o.PID, o.Host)
}

// stopFlags reads every agent's stop flag in one round trip.
func stopFlags(ctx context.Context, store *town.Store, agents []*town.Agent) ([]bool, error) {
	k := store.Keys()
	cmds := make([]*redis.IntCmd, len(agents))
	if _, err := store.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range agents {
			cmds[i] = p.Exists(ctx, k.Stop(a.ID))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read stop flags: %w", err)
	}
	out := make([]bool, len(agents))
	for i, c := range cmds {
		out[i] = c.Val() > 0
	}
	return out, nil
}

// currentTaskOf is tt's current task rule (store.CurrentTaskFor) over a
// task list already read: current_task when set, else the only open task
// assigned to the agent.
func currentTaskOf(a *town.Agent, tasks []*town.Task) *town.Task {
	if a.CurrentTask != "" {
		for _, t := range tasks {
			if t.ID == a.CurrentTask {
				return t
			}
		}
		return nil
	}
	var found *town.Task
	for _, t := range tasks {
		if t.AssignedTo == a.ID && !t.State.Terminal() {
			if found != nil {
				return nil
			}
			found = t
		}
	}
	return found
}

// printAgentTable writes the agents as an aligned table.
func printAgentTable(w io.Writer, rows []*AgentRow, now time.Time) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No agents. Start one with `tthost spawn NAME`.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNICKNAME\tID\tSTATE\tCLI\tROUNDS\tTASKS\tINBOX/URGENT/IN-FLIGHT\tCURRENT TASK\tSERVED BY\tHEARTBEAT")
	for _, r := range rows {
		state := r.State
		if r.StopRequested && state != string(town.StateStopped) {
			state += " (stopping)"
		}
		cur := "-"
		if r.CurrentTask != "" {
			cur = shortTask(r.CurrentTask)
			if r.CurrentTaskDescription != "" {
				cur += " " + oneLine(r.CurrentTaskDescription, 40)
			}
		}
		nick := r.Nickname
		if nick == "" {
			nick = "-"
		}
		by := r.ServedBy
		if by == "" {
			by = "-"
			if r.Wanted {
				by = "(wanted)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d/%d/%d\t%s\t%s\t%s\n",
			r.Name, nick, r.ShortID, state, r.CLI, r.RoundsCompleted, r.TasksCompleted,
			r.Inbox, r.Urgent, r.InFlight, cur, by, ago(r.heartbeat, now))
	}
	tw.Flush()
}
