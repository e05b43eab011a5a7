package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// InterruptOptions are `tthost interrupt`'s arguments.
type InterruptOptions struct {
	F     *Factory
	Agent string
}

// NewCmdInterrupt builds `tthost interrupt AGENT`.
func NewCmdInterrupt(f *Factory, runF func(context.Context, *InterruptOptions) error) *cobra.Command {
	opts := &InterruptOptions{F: f}
	return &cobra.Command{
		Use:   "interrupt AGENT",
		Short: "Pause an agent: its running turn is cancelled, its messages wait",
		Long: `interrupt pauses AGENT (state paused), as tt interrupt does. A tthost worker
cancels the running turn at once and puts that turn's messages back in
the queue; while paused it takes no messages. Resume with
` + "`tthost resume AGENT`" + `. A stopped agent cannot be interrupted.`,
		Args: exactArgs(1, "AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			return dispatch(cmd, opts, runF, interruptRun)
		},
	}
}

// terminalStates are the states interrupt and resume never leave.
var terminalStates = []town.AgentState{town.StateStopped, town.StateError, town.StateCold}

func interruptRun(ctx context.Context, opts *InterruptOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	a, err := resolveWorker(ctx, store, opts.Agent, "interrupt")
	if err != nil {
		return err
	}
	notRunning := func(s town.AgentState) error {
		return fmt.Errorf("%s is %s: there is no worker to interrupt (start a new agent with `tthost spawn`)", label(a), s)
	}
	if a.State.Terminal() {
		return notRunning(a.State)
	}
	if a.State == town.StatePaused {
		fmt.Fprintf(f.IO.Out, "⏸️  %s is already paused; resume it with `tthost resume %s`\n", label(a), a.Name)
		return nil
	}
	// Compare-and-set: a worker that stopped meanwhile stays stopped.
	ok, err := store.SetAgentStateUnless(ctx, a.ID, town.StatePaused, terminalStates...)
	if err != nil {
		return err
	}
	if !ok {
		s, err := store.AgentState(ctx, a.ID)
		if err != nil {
			return err
		}
		return notRunning(s)
	}
	if err := store.Wake(ctx, a.ID); err != nil {
		return err
	}
	if err := store.LogActivity(ctx, a.ID, "⏸️ Interrupted (paused)"); err != nil {
		return err
	}
	ev := town.NewEvent(town.EventAgentInterrupted, "Agent interrupted (paused)")
	ev.AgentID, ev.OldState, ev.NewState = a.ID, a.State.Debug(), town.StatePaused.Debug()
	emitBestEffort(ctx, f, store, ev)
	fmt.Fprintf(f.IO.Out, "⏸️  Paused %s, was %s; resume it with `tthost resume %s`\n", label(a), a.State, a.Name)
	return nil
}
