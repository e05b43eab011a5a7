package cli

import "github.com/spf13/cobra"

// NewCmdPlugin builds `tthost plugin`, the group of plugin commands.
func NewCmdPlugin(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Install, list, verify and prove backend plugins",
	}
	cmd.AddCommand(NewCmdPluginConformance(f, nil))
	return cmd
}
