package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk"
)

// PluginDescribeOptions are `tthost plugin describe`'s arguments.
type PluginDescribeOptions struct {
	F *Factory
	// Ref is NAME[@VERSION] or PATH.
	Ref  string
	JSON bool
}

// NewCmdPluginDescribe builds `tthost plugin describe`.
func NewCmdPluginDescribe(f *Factory, runF func(context.Context, *PluginDescribeOptions) error) *cobra.Command {
	opts := &PluginDescribeOptions{F: f}
	cmd := &cobra.Command{
		Use:   "describe NAME[@VERSION]|PATH",
		Short: "Start a plugin and print what it says about itself",
		Long: `describe starts a plugin, prints its Describe answer (name, version, protocol,
the CLIs it serves with their capabilities, its options schema) and stops it.
NAME is a built-in or installed plugin, verified against its recorded
checksum as at every launch; PATH (anything with a slash: ./mine) is any
plugin binary, hashed now to launch it.`,
		Args: exactArgs(1, "a plugin NAME or PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			return dispatch(cmd, opts, runF, pluginDescribeRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the description as JSON")
	return cmd
}

// PluginDescription is describe's --json output.
type PluginDescription struct {
	Name          string          `json:"name"`
	Version       string          `json:"version"`
	Summary       string          `json:"summary,omitempty"`
	Protocol      int             `json:"protocol"`
	SDKVersion    string          `json:"sdk_version"`
	CLIs          []PluginCLI     `json:"clis"`
	OptionsSchema json.RawMessage `json:"options_schema,omitempty"`
	Path          string          `json:"path"`
	SHA256        string          `json:"sha256"`
}

func pluginDescribeRun(ctx context.Context, opts *PluginDescribeOptions) error {
	places, err := pluginPlacesOf(opts.F)
	if err != nil {
		return err
	}
	path, sum, err := describeTarget(places, opts.Ref)
	if err != nil {
		return err
	}
	d, err := pluginstore.DescribeBinary(ctx, path, sum, places.launch)
	if err != nil {
		return err
	}
	out := PluginDescription{Name: d.Name, Version: d.Version, Summary: d.Summary, Protocol: d.ProtocolVersion, SDKVersion: d.SDKVersion,
		CLIs: pluginCLIs(d), Path: path, SHA256: hex.EncodeToString(sum)}
	if d.OptionsSchema != "" && json.Valid([]byte(d.OptionsSchema)) {
		out.OptionsSchema = json.RawMessage(d.OptionsSchema)
	}
	if opts.JSON {
		return printJSON(opts.F.IO.Out, out)
	}
	printDescription(opts.F.IO.Out, out, d)
	return nil
}

// describeTarget resolves NAME[@VERSION] through discovery (with the
// recorded checksum, refusing an installed plugin others could replace)
// or PATH (hashed now). As for `plugin conformance`, a reference with a
// slash is a path, so a file in the current directory never hides a name.
func describeTarget(places pluginPlaces, ref string) (path string, sum []byte, err error) {
	if strings.ContainsRune(ref, os.PathSeparator) {
		sum, err := pluginstore.FileSHA256(ref)
		if err != nil {
			return "", nil, fmt.Errorf("cannot describe %s: %w", ref, err)
		}
		return ref, sum, nil
	}
	all, err := pluginstore.List(places.dirs()...)
	if err != nil {
		return "", nil, err
	}
	l, err := findListed(all, ref)
	if err != nil {
		return "", nil, err
	}
	if err := l.CheckSafe(); err != nil {
		return "", nil, err
	}
	if l.Checksum == nil {
		return "", nil, fmt.Errorf("plugin %s (%s): %w; tthost runs only plugins whose SHA-256 it recorded: install it with `tthost plugin install`",
			ref, l.Path, pluginstore.ErrNoChecksum)
	}
	return l.Path, l.Checksum, nil
}

func printDescription(w io.Writer, out PluginDescription, d sdk.Description) {
	fmt.Fprintf(w, "%s %s\n", out.Name, out.Version)
	if out.Summary != "" {
		fmt.Fprintf(w, "  %s\n", out.Summary)
	}
	fmt.Fprintf(w, "  Protocol: %d (SDK %s)\n", out.Protocol, orDash(out.SDKVersion))
	fmt.Fprintf(w, "  Binary:   %s\n", out.Path)
	fmt.Fprintf(w, "  SHA-256:  %s\n", out.SHA256)
	fmt.Fprintln(w, "  CLIs:")
	for _, c := range out.CLIs {
		name := c.Name
		if name == sdk.AnyCLI {
			name = "* (any CLI)"
		}
		caps := strings.Join(c.Capabilities, ", ")
		if caps == "" {
			caps = "no optional capabilities"
		}
		fmt.Fprintf(w, "    %-14s %s\n", name, caps)
	}
	if d.OptionsSchema != "" {
		fmt.Fprintf(w, "  Options schema: %s\n", d.OptionsSchema)
	}
}
