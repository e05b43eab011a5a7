package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"
)

// PluginConformanceOptions are `tthost plugin conformance`'s arguments.
type PluginConformanceOptions struct {
	F *Factory
}

// NewCmdPluginConformance builds `tthost plugin conformance` (being written).
func NewCmdPluginConformance(f *Factory, runF func(context.Context, *PluginConformanceOptions) error) *cobra.Command {
	opts := &PluginConformanceOptions{F: f}
	return &cobra.Command{
		Use:   "conformance NAME|PATH",
		Short: "Prove a backend plugin keeps the contract",
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, func(context.Context, *PluginConformanceOptions) error {
				return errors.New("not implemented yet")
			})
		},
	}
}
