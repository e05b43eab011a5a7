// Package cli holds tthost's commands: one file per command (or noun), each
// a NewCmdX constructor that fills an Options struct and a plain xRun
// function that does the work, so tests call the run functions directly
// with buffers for IO. Commands print for people by default and take
// --json for machines; errors say what went wrong and what to do next.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/version"
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs tthost with args and returns the process exit code: 0 on
// success, 1 on failure, 2 on a usage error.
//
// SIGTERM, SIGINT and SIGHUP cancel the command's context: a worker
// (agent-loop) cancels its turn, re-queues its messages and leaves the agent
// stopped, a follower (events --follow) ends. SIGHUP is among them because a
// worker in a terminal that closes, or under a supervisor that sends it,
// must stop as cleanly as on SIGTERM rather than die with its work in
// flight. The embedded Redis server ignores SIGHUP, as redis-server does.
func Main(io *IOStreams, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), shutdownSignals...)
	defer stop()
	f := NewFactory(io)
	defer f.Close()
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(io.ErrOut, "error: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		return 2
	}
	return 1
}

// shutdownSignals end a command gracefully (see Main).
var shutdownSignals = []os.Signal{syscall.SIGTERM, os.Interrupt, syscall.SIGHUP}

// NewRootCmd builds the tthost command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "tthost",
		Short: "Run coding-agent workers for a Tinytown-compatible town",
		Long: `tthost runs the workers of a coding-agent town. Each agent has an inbox in
Redis; tthost agent-loop turns its messages into turns of the agent's coding
CLI through a backend plugin process. tthost speaks Tinytown's Redis format,
so it can serve an existing Tinytown town or run a town of its own.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&f.TownDir, "town", "t", ".", "the town's root directory (where tinytown.toml is)")
	root.PersistentFlags().BoolVarP(&f.Verbose, "verbose", "v", false, "log more (debug level)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())}
	})
	for _, c := range commands(f) {
		root.AddCommand(c)
	}
	return root
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// exactArgs is cobra.ExactArgs with a usage error that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s needs %s (got %d argument(s))\nRun '%s --help' for usage.", cmd.CommandPath(), names, len(args), cmd.CommandPath())}
		}
		return nil
	}
}

// dispatch runs a command's run function, or the test's runF instead.
func dispatch[O any](cmd *cobra.Command, opts *O, runF, run func(context.Context, *O) error) error {
	if runF != nil {
		run = runF
	}
	return run(cmd.Context(), opts)
}
