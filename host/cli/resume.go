package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// ResumeOptions are `tthost resume`'s arguments.
type ResumeOptions struct {
	F     *Factory
	Agent string
}

// NewCmdResume builds `tthost resume AGENT`.
func NewCmdResume(f *Factory, runF func(context.Context, *ResumeOptions) error) *cobra.Command {
	opts := &ResumeOptions{F: f}
	return &cobra.Command{
		Use:   "resume AGENT",
		Short: "Resume a paused agent",
		Long: `resume sets a paused agent back to idle and clears its stop flag, as tt
resume does; its worker takes the waiting messages again at once.`,
		Args: exactArgs(1, "AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			return dispatch(cmd, opts, runF, resumeRun)
		},
	}
}

// notPaused are the states resume refuses to change.
var notPaused = []town.AgentState{
	town.StateCold, town.StateStarting, town.StateIdle, town.StateWorking,
	town.StateDraining, town.StateStopped, town.StateError,
}

func resumeRun(ctx context.Context, opts *ResumeOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	a, err := resolveWorker(ctx, store, opts.Agent, "resume")
	if err != nil {
		return err
	}
	refuse := func(s town.AgentState) error {
		return fmt.Errorf("%s is %s, not paused: only a paused agent can be resumed (pause one with `tthost interrupt`)", label(a), s)
	}
	if a.State != town.StatePaused {
		return refuse(a.State)
	}
	// Compare-and-set: only a still-paused agent becomes idle.
	ok, err := store.SetAgentStateUnless(ctx, a.ID, town.StateIdle, notPaused...)
	if err != nil {
		return err
	}
	if !ok {
		s, err := store.AgentState(ctx, a.ID)
		if err != nil {
			return err
		}
		return refuse(s)
	}
	if err := store.ClearStop(ctx, a.ID); err != nil {
		return err
	}
	if err := store.Wake(ctx, a.ID); err != nil {
		return err
	}
	if err := store.LogActivity(ctx, a.ID, "▶️ Resumed"); err != nil {
		return err
	}
	ev := town.NewEvent(town.EventAgentResumed, "Agent resumed")
	ev.AgentID, ev.OldState, ev.NewState = a.ID, town.StatePaused.Debug(), town.StateIdle.Debug()
	emitBestEffort(ctx, f, store, ev)
	fmt.Fprintf(f.IO.Out, "▶️  Resumed %s\n", label(a))
	return nil
}
