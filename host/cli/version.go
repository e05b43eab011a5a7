package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/version"
	"github.com/tthost/tthost/sdk"
)

// NewCmdVersion builds `tthost version`.
func NewCmdVersion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tthost's version and the backend protocol it speaks",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(f.IO.Out, "tthost %s (backend protocol v%d, SDK %s)\n", version.Version, sdk.ProtocolVersion, sdk.Version)
			return nil
		},
	}
}
