package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/pluginstore"
)

// PluginRemoveOptions are `tthost plugin remove`'s arguments.
type PluginRemoveOptions struct {
	F *Factory
	// Ref is NAME or NAME@VERSION.
	Ref string
}

// NewCmdPluginRemove builds `tthost plugin remove`.
func NewCmdPluginRemove(f *Factory, runF func(context.Context, *PluginRemoveOptions) error) *cobra.Command {
	opts := &PluginRemoveOptions{F: f}
	return &cobra.Command{
		Use:   "remove NAME[@VERSION]",
		Short: "Remove an installed plugin (every version, or one)",
		Long: `remove deletes an installed plugin's binary and its lock-file entry: the
version given, or every installed version of NAME. Built-in backends ship
with tthost and cannot be removed. Agents already running keep the plugin
process they started; new ones use what is left (an older version, or the
one-shot fallback).`,
		Args: exactArgs(1, "a plugin NAME or NAME@VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return dispatch(cmd, opts, runF, pluginRemoveRun)
		},
	}
}

func pluginRemoveRun(_ context.Context, opts *PluginRemoveOptions) error {
	places, err := pluginPlacesOf(opts.F)
	if err != nil {
		return err
	}
	builtins, err := places.builtins()
	if err != nil {
		return err
	}
	name, version := splitRef(opts.Ref)
	gone, err := pluginstore.Remove(places.dir, name, version, builtins)
	for _, e := range gone {
		fmt.Fprintf(opts.F.IO.Out, "Removed %s %s (%s)\n", e.Name, e.Version, filepath.Join(places.dir, e.Path))
	}
	return err
}
