package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/townredis"
	"github.com/tthost/tthost/sdk"
)

// StatusOptions are `tthost status`'s arguments.
type StatusOptions struct {
	F     *Factory
	Agent string
	Deep  bool
	JSON  bool
}

// TownStatus is `tthost status --json` without an agent.
type TownStatus struct {
	Town    string         `json:"town"`
	Root    string         `json:"root"`
	Redis   RedisInfo      `json:"redis"`
	Backlog int            `json:"backlog"`
	Tasks   map[string]int `json:"tasks"`
	Agents  []*AgentRow    `json:"agents"`
}

// RedisInfo describes the Redis a command connected to.
type RedisInfo struct {
	URL    string `json:"url"` // password redacted
	Source string `json:"source"`
	Kind   string `json:"kind"`
	Pid    int    `json:"pid,omitempty"`
	Notice string `json:"notice,omitempty"`
}

// NewCmdStatus builds `tthost status [AGENT]`.
func NewCmdStatus(f *Factory, runF func(context.Context, *StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{F: f}
	cmd := &cobra.Command{
		Use:   "status [AGENT]",
		Short: "Show the town (its Redis and agents) or one agent in detail",
		Long: `Without AGENT, status shows the town: its name, its Redis (password hidden),
the backlog and task counts, and every agent as ` + "`tthost list`" + ` does.
With AGENT (a name, nickname, label, short id or id), it shows that agent in
detail: its state, queues, current task, the backend that serves it (one-shot
or a persistent session), how urgent messages are steered into a running turn
(native, queue or restart) and its runtime session id. --deep adds why that
backend was chosen and the agent's last 5 activity lines.`,
		Example: `  tthost status
  tthost status backend --deep
  tthost status --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("status takes at most one AGENT (got %d arguments)", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Agent = args[0]
			}
			return dispatch(cmd, opts, runF, statusRun)
		},
	}
	cmd.Flags().BoolVar(&opts.Deep, "deep", false, "also show why the backend was chosen and the agent's recent activity")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func statusRun(ctx context.Context, opts *StatusOptions) error {
	if opts.Agent != "" {
		return agentStatusRun(ctx, opts)
	}
	f := opts.F
	cfg, store, root, err := f.Town(ctx)
	if err != nil {
		return err
	}
	rows, err := agentRows(ctx, store)
	if err != nil {
		return err
	}
	backlog, err := store.Client().LLen(ctx, store.Keys().Backlog()).Result()
	if err != nil {
		return fmt.Errorf("read the backlog: %w", err)
	}
	tasks, err := store.ListTasks(ctx)
	if err != nil {
		return err
	}
	st := TownStatus{
		Town: cfg.Name, Root: root, Redis: redisInfo(f.Server()), Backlog: int(backlog),
		Tasks: map[string]int{}, Agents: rows,
	}
	for _, t := range tasks {
		st.Tasks[string(t.State)]++
	}
	if opts.JSON {
		return printJSON(f.IO.Out, st)
	}
	out := f.IO.Out
	fmt.Fprintf(out, "🏘️  Town %s (%s)\n", st.Town, st.Root)
	fmt.Fprintf(out, "   Redis:   %s\n", describeRedisShort(st.Redis))
	if st.Redis.Notice != "" {
		fmt.Fprintf(out, "            %s\n", st.Redis.Notice)
	}
	active := 0
	for _, r := range rows {
		if s, _ := town.ParseAgentState(r.State); !s.Terminal() {
			active++
		}
	}
	open := len(tasks) - st.Tasks[string(town.TaskCompleted)] - st.Tasks[string(town.TaskFailed)] - st.Tasks[string(town.TaskCancelled)]
	fmt.Fprintf(out, "   Agents:  %d (%d active)\n", len(rows), active)
	fmt.Fprintf(out, "   Tasks:   %d open (%d in the backlog), %d completed\n\n", open, st.Backlog, st.Tasks[string(town.TaskCompleted)])
	printAgentTable(out, rows, time.Now())
	return nil
}

func redisInfo(srv townredis.Server) RedisInfo {
	return RedisInfo{URL: srv.Endpoint.Redacted(), Source: srv.Endpoint.Source, Kind: srv.Kind, Pid: srv.Pid, Notice: srv.Notice}
}

func describeRedisShort(r RedisInfo) string {
	switch r.Kind {
	case townredis.KindRedisServer:
		return fmt.Sprintf("%s (town-private redis-server, pid %d)", r.URL, r.Pid)
	case townredis.KindEmbedded:
		return fmt.Sprintf("%s (embedded in-memory server, pid %d)", r.URL, r.Pid)
	}
	return fmt.Sprintf("%s (from %s)", r.URL, r.Source)
}

func agentStatusRun(ctx context.Context, opts *StatusOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	a, err := resolveWorker(ctx, store, opts.Agent, "show")
	if err != nil {
		return err
	}
	rows, err := rowsFor(ctx, store, []*town.Agent{a})
	if err != nil {
		return err
	}
	r := rows[0]
	rt, err := store.Runtime(ctx, a.ID)
	if err != nil {
		return err
	}
	r.Runtime = runtimeRow(rt)
	if opts.Deep {
		if r.Activity, err = store.Activity(ctx, a.ID, 5); err != nil {
			return err
		}
		if r.Activity == nil {
			r.Activity = []string{}
		}
	}
	if opts.JSON {
		return printJSON(f.IO.Out, r)
	}
	root, err := f.TownRoot()
	if err != nil {
		return err
	}
	out := f.IO.Out
	now := time.Now()
	fmt.Fprintf(out, "🤖 Agent %s\n", a.DisplayLabel())
	line := func(k, v string) { fmt.Fprintf(out, "   %-14s %s\n", k+":", v) }
	line("ID", a.ID)
	line("Name", a.Name)
	if a.Nickname != "" {
		line("Nickname", a.Nickname)
	}
	if a.RoleID != "" {
		line("Role", a.RoleID)
	}
	state := r.State
	if r.StopRequested {
		state += " (stop requested)"
	}
	line("State", state)
	line("CLI", a.CLI)
	line("Rounds", fmt.Sprintf("%d completed", a.RoundsCompleted))
	line("Tasks", fmt.Sprintf("%d completed", a.TasksCompleted))
	line("Messages", fmt.Sprintf("%d in the inbox, %d urgent, %d in flight", r.Inbox, r.Urgent, r.InFlight))
	switch {
	case r.CurrentTaskDescription != "":
		line("Current task", r.CurrentTask+" "+oneLine(r.CurrentTaskDescription, 60))
	case r.CurrentTask != "":
		line("Current task", r.CurrentTask+" (its record is gone)")
	default:
		line("Current task", "none")
	}
	line("Heartbeat", ago(a.LastHeartbeat, now))
	switch {
	case r.ServedBy != "":
		line("Served by", r.ServedBy)
	case r.Wanted:
		line("Served by", "nobody yet: wanted by the serve hosts (see `tthost hosts`)")
	default:
		line("Served by", "nobody")
	}
	line("Last active", ago(a.LastActiveAt, now))
	line("Created", ago(a.CreatedAt, now))
	if a.ParentAgentID != "" {
		line("Parent", a.ParentAgentID)
	}
	if rt := r.Runtime; rt != nil {
		kind := "one-shot"
		if rt.Persistent {
			kind = "persistent session"
		}
		line("Backend", fmt.Sprintf("%s (%s), worker %s", rt.Backend, kind, rt.Worker))
		if opts.Deep && rt.Reason != "" {
			line("Chosen", rt.Reason)
		}
		steer := "no (urgent messages wait for the next round)"
		switch rt.SteerMode {
		case "":
		case string(sdk.SteerNative):
			steer = "native (into the running turn)"
		case string(sdk.SteerQueue):
			steer = "queue (a follow-up prompt when the running one ends, same round)"
		case string(sdk.SteerRestart):
			steer = "restart (the running prompt is cancelled and prompted again with them)"
		default:
			steer = rt.SteerMode
		}
		if rt.Persistent {
			line("Steering", steer)
		}
	}
	if a.RuntimeSessionID != "" {
		line("Session", a.RuntimeSessionID)
	}
	line("Log", filepath.Join(root, ".tt", "logs", a.Name+".log"))
	for _, p := range r.Problems {
		fmt.Fprintf(out, "   ⚠️  %s\n", p)
	}
	if opts.Deep {
		fmt.Fprintf(out, "   Recent activity (newest first):\n")
		if len(r.Activity) == 0 {
			fmt.Fprintf(out, "     (none in the last hour)\n")
		}
		for _, l := range r.Activity {
			fmt.Fprintf(out, "     %s\n", l)
		}
	}
	return nil
}
