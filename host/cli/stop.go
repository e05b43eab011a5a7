package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// StopOptions are `tthost stop`'s and `tthost kill`'s arguments.
type StopOptions struct {
	F      *Factory
	Agents []string // empty: every agent that is not stopped
	// Wait waits until each agent's tthost worker has exited (its last
	// event is written and its lease released), up to Timeout.
	Wait    bool
	Timeout time.Duration
}

const stopHelp = `The agent's stop flag is set and its worker woken: a tthost worker cancels a
running turn, puts that turn's messages back in the queue and exits; a tt
worker finishes its turn first. Like tt, the agent's state is set to
stopped at once, before the worker has exited; the worker clears the flag
when it goes. Redis keeps running (` + "`tthost redis stop`" + ` stops the town's own).`

// NewCmdStop builds `tthost stop [AGENT...]`.
func NewCmdStop(f *Factory, runF func(context.Context, *StopOptions) error) *cobra.Command {
	opts := &StopOptions{F: f}
	cmd := &cobra.Command{
		Use:   "stop [AGENT...]",
		Short: "Stop agents (all that are not stopped, when none is named)",
		Long:  "stop asks the named agents, or every agent that is not stopped, to stop.\n\n" + stopHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agents = args
			return dispatch(cmd, opts, runF, stopRun)
		},
	}
	addWaitFlags(cmd, opts)
	return cmd
}

func addWaitFlags(cmd *cobra.Command, opts *StopOptions) {
	cmd.Flags().BoolVar(&opts.Wait, "wait", false, "wait until each agent's tthost worker has exited")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Second, "with --wait: how long to wait")
}

// NewCmdKill builds `tthost kill AGENT` (tt's name for stopping one agent).
func NewCmdKill(f *Factory, runF func(context.Context, *StopOptions) error) *cobra.Command {
	opts := &StopOptions{F: f}
	cmd := &cobra.Command{
		Use:   "kill AGENT",
		Short: "Stop one agent (as tt kill does)",
		Long:  "kill asks one agent to stop; it is `tthost stop AGENT`.\n\n" + stopHelp,
		Args:  exactArgs(1, "AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agents = args
			return dispatch(cmd, opts, runF, stopRun)
		},
	}
	addWaitFlags(cmd, opts)
	return cmd
}

func stopRun(ctx context.Context, opts *StopOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	var targets []*town.Agent
	if len(opts.Agents) == 0 {
		all, err := store.ListAgents(ctx)
		if err != nil {
			return err
		}
		for _, a := range all {
			if !a.State.Terminal() {
				targets = append(targets, a)
			}
		}
		if len(targets) == 0 {
			fmt.Fprintln(f.IO.Out, "No running agents to stop.")
			return nil
		}
	} else {
		seen := map[string]bool{}
		for _, ref := range opts.Agents {
			a, err := resolveWorker(ctx, store, ref, "stop")
			if err != nil {
				return err
			}
			if !seen[a.ID] {
				seen[a.ID] = true
				targets = append(targets, a)
			}
		}
	}
	marks := map[string]string{}
	for _, a := range targets {
		if opts.Wait {
			// Remember where the agent's stream is, to wait for the
			// worker's last event after it.
			if marks[a.ID], err = store.LastEventID(ctx, store.Keys().EventsAgent(a.ID)); err != nil {
				return err
			}
		}
		if err := stopAgent(ctx, f, store, a); err != nil {
			return err
		}
	}
	if !opts.Wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	for _, a := range targets {
		if err := waitWorkerExit(wctx, store, a, marks[a.ID]); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s: its worker did not exit within %s (see %s)", label(a), opts.Timeout, ".tt/logs/"+a.Name+".log")
			}
			return err
		}
		fmt.Fprintf(f.IO.Out, "   %s: worker exited\n", label(a))
	}
	return nil
}

// waitWorkerExit waits for the agent's tthost worker to finish: it follows
// the agent's event stream after mark until the worker's final event. An
// agent no tthost worker holds (no lease) has nothing to wait for.
func waitWorkerExit(ctx context.Context, store *town.Store, a *town.Agent, mark string) error {
	holder, err := store.LeaseHolder(ctx, a.ID)
	if err != nil || holder == nil {
		return err
	}
	done := errors.New("done")
	err = store.FollowEvents(ctx, store.Keys().EventsAgent(a.ID), mark, func(en town.EventEntry) error {
		if en.Event != nil && en.Event.Type == town.EventAgentStopped && en.Event.Scope == "tthost.loop_finished" {
			return done
		}
		return nil
	})
	if errors.Is(err, done) {
		return nil
	}
	return err
}

// stopAgent is tt kill: stop flag (which wakes a tthost worker), state
// stopped, activity line, and an agent_stopped event.
func stopAgent(ctx context.Context, f *Factory, store *town.Store, a *town.Agent) error {
	if err := store.RequestStop(ctx, a.ID); err != nil {
		return err
	}
	// Released from the serve hosts: the one serving it ends its loop on
	// the stop flag, and none claims it again.
	if _, err := store.Unwant(ctx, a.ID); err != nil {
		return err
	}
	if err := store.SetAgentState(ctx, a.ID, town.StateStopped); err != nil {
		return err
	}
	if err := store.LogActivity(ctx, a.ID, "🛑 Stop requested"); err != nil {
		return err
	}
	ev := town.NewEvent(town.EventAgentStopped, "Stop requested")
	ev.AgentID, ev.OldState, ev.NewState = a.ID, a.State.Debug(), town.StateStopped.Debug()
	emitBestEffort(ctx, f, store, ev)
	was := "was " + string(a.State)
	if a.State.Terminal() {
		was = "it was already " + string(a.State)
	}
	fmt.Fprintf(f.IO.Out, "🛑 Stopped %s, %s\n", label(a), was)
	return nil
}
