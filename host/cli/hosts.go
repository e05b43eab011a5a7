package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// HostsOptions are `tthost hosts`'s flags.
type HostsOptions struct {
	F    *Factory
	JSON bool
}

// HostRow is one serve host as `tthost hosts --json` prints it.
type HostRow struct {
	ID        string            `json:"id"`
	Alive     bool              `json:"alive"`
	Hostname  string            `json:"hostname"`
	PID       int               `json:"pid"`
	Version   string            `json:"version"`
	Capacity  int               `json:"capacity"`
	Load      int               `json:"load"`
	Labels    map[string]string `json:"labels,omitempty"`
	Listen    string            `json:"listen,omitempty"`
	LeaseTTL  string            `json:"lease_ttl"`
	Started   string            `json:"started"`
	Heartbeat string            `json:"heartbeat"`
}

// NewCmdHosts builds `tthost hosts`.
func NewCmdHosts(f *Factory, runF func(context.Context, *HostsOptions) error) *cobra.Command {
	opts := &HostsOptions{F: f}
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List the town's serve hosts: capacity, load, version, last heartbeat",
		Long: `hosts lists the ` + "`tthost serve`" + ` hosts of the town, alive ones first: each
one's capacity and load (agents it serves), version, labels, lease TTL
and last heartbeat. A host that died is listed as gone until an hour after
its last heartbeat; its agents are taken by the others once its lease TTL
has passed. Agents wanted by the hosts and served by none are counted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, hostsRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the hosts as JSON")
	return cmd
}

func hostsRun(ctx context.Context, opts *HostsOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	hosts, bad, err := store.Hosts(ctx)
	if err != nil {
		return err
	}
	for _, e := range bad {
		fmt.Fprintf(f.IO.ErrOut, "warning: %v\n", e)
	}
	rows := make([]HostRow, 0, len(hosts))
	for _, h := range hosts {
		rows = append(rows, HostRow{
			ID: h.ID, Alive: h.Alive, Hostname: h.Hostname, PID: h.PID, Version: h.Version,
			Capacity: h.Capacity, Load: h.Load, Labels: h.Labels, Listen: h.Listen, LeaseTTL: h.LeaseTTL().String(),
			Started: jsonTime(h.Started), Heartbeat: jsonTime(h.Heartbeat),
		})
	}
	if opts.JSON {
		return printJSON(f.IO.Out, rows)
	}
	out := f.IO.Out
	if len(rows) == 0 {
		fmt.Fprintln(out, "No serve hosts. Start one with `tthost serve`; until then `tthost spawn` starts a worker per agent.")
	} else {
		now := time.Now()
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tSTATE\tLOAD/CAPACITY\tVERSION\tLABELS\tLEASE TTL\tHEARTBEAT\tPROCESS")
		for _, h := range hosts {
			state := "alive"
			if !h.Alive {
				state = "gone"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\tpid %d on %s\n", h.ID, state, h.Load, h.Capacity, orDash(h.Version),
				labelsText(h.Labels), h.LeaseTTL(), ago(h.Heartbeat, now), h.PID, h.Hostname)
		}
		tw.Flush()
	}
	wanted, _, err := store.WantedAgents(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(wanted))
	for id := range wanted {
		ids = append(ids, id)
	}
	owners, err := store.LeaseOwners(ctx, ids)
	if err != nil {
		return err
	}
	waiting := 0
	for _, id := range ids {
		if _, ok := owners[id]; !ok {
			waiting++
		}
	}
	fmt.Fprintf(out, "%d agent(s) wanted by the hosts, %d of them not served right now.\n", len(wanted), waiting)
	return nil
}

func labelsText(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// AdoptOptions are `tthost adopt`'s arguments.
type AdoptOptions struct {
	F         *Factory
	Agent     string
	MaxRounds int
}

// NewCmdAdopt builds `tthost adopt AGENT`.
func NewCmdAdopt(f *Factory, runF func(context.Context, *AdoptOptions) error) *cobra.Command {
	opts := &AdoptOptions{F: f}
	cmd := &cobra.Command{
		Use:   "adopt AGENT",
		Short: "Hand an existing agent (one tt created) to the town's serve hosts",
		Long: `adopt registers an agent that already has a record (created by tt spawn, or
by tthost spawn before the town had hosts) as wanted by the town's serve
hosts: one of them claims it and serves its inbox. Stop any other worker of
the agent first (tt's own agent-loop takes no lease, so a host cannot see
it). ` + "`tthost stop`" + ` or ` + "`tthost kill`" + ` releases it again.`,
		Args: exactArgs(1, "AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			if opts.MaxRounds < 0 {
				return usageError{fmt.Errorf("--max-rounds must be 0 or more, got %d", opts.MaxRounds)}
			}
			return dispatch(cmd, opts, runF, adoptRun)
		},
	}
	cmd.Flags().IntVar(&opts.MaxRounds, "max-rounds", 10, "turns the host runs for the agent before it stops")
	return cmd
}

func adoptRun(ctx context.Context, opts *AdoptOptions) error {
	f := opts.F
	cfg, store, _, err := f.Town(ctx)
	if err != nil {
		return err
	}
	a, err := resolveWorker(ctx, store, opts.Agent, "adopt")
	if err != nil {
		return err
	}
	if holder, err := store.LeaseHolder(ctx, a.ID); err != nil {
		return err
	} else if holder != nil && holder.HostID == "" {
		return fmt.Errorf("%s is served by a tthost agent-loop (pid %d on %s): stop it first (`tthost stop %s`), then adopt it", label(a), holder.PID, holder.Host, a.Name)
	}
	cliName := cfg.ResolveCLIName(a.CLI)
	if a.CLI == "" {
		cliName = cfg.ResolveCLIName(cfg.DefaultCLI)
	}
	if a.State == town.StateStopped {
		// A stopped agent is served again: clear a stale stop flag so its
		// new loop does not end at once.
		if err := store.ClearStop(ctx, a.ID); err != nil {
			return err
		}
	}
	if err := store.Want(ctx, town.WantedAgent{ID: a.ID, Name: a.Name, CLI: cliName, MaxRounds: opts.MaxRounds, By: "adopt"}); err != nil {
		return err
	}
	hosts, err := store.AliveServeHosts(ctx, map[string]string{"cli": cliName})
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		fmt.Fprintf(f.IO.Out, "📥 %s is wanted by the serve hosts, but none that may run %s is alive: it is served once one starts (`tthost serve`)\n", label(a), cliName)
		return nil
	}
	fmt.Fprintf(f.IO.Out, "📥 Handed %s to the serve hosts (%d alive: %s)\n", label(a), len(hosts), hostNames(hosts))
	return nil
}
