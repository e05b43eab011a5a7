package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk"
)

// PluginListOptions are `tthost plugin list`'s flags.
type PluginListOptions struct {
	F    *Factory
	JSON bool
}

// NewCmdPluginList builds `tthost plugin list`.
func NewCmdPluginList(f *Factory, runF func(context.Context, *PluginListOptions) error) *cobra.Command {
	opts := &PluginListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the built-in and installed backend plugins",
		Long: `list shows every plugin tthost knows of: the built-in ones next to tthost and
every installed version, with the CLIs each serves and their capabilities,
and the state of its checksum, re-hashed now: ok, MISMATCH (the file changed
since it was recorded; tthost refuses to run it), missing file, or no
checksum. Installed plugins are described from the lock file; built-in ones
are started once to describe themselves. A NOTE says why an entry is not
the one used for its name.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, pluginListRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the plugins as JSON")
	return cmd
}

// PluginRow is one plugin as list prints it (and --json).
type PluginRow struct {
	Name       string `json:"name"`
	Version    string `json:"version,omitempty"`
	Protocol   int    `json:"protocol,omitempty"`
	SDKVersion string `json:"sdk_version,omitempty"`
	Summary    string `json:"summary,omitempty"`
	// Source is "built-in", "installed", or "loose" (a binary placed by
	// hand beside a tthost-plugins.sha256 manifest).
	Source string      `json:"source"`
	CLIs   []PluginCLI `json:"clis"`
	Path   string      `json:"path"`
	// SHA256 is the recorded checksum ("" when none is).
	SHA256 string `json:"sha256,omitempty"`
	// Checksum is the state found by re-hashing the file.
	Checksum pluginstore.ChecksumState `json:"checksum"`
	// Active is true for the plugin that serves under the name.
	Active      bool   `json:"active"`
	InstalledAt string `json:"installed_at,omitempty"`
	// InstalledFrom is the path or URL it was installed from.
	InstalledFrom string `json:"installed_from,omitempty"`
	// Note says why it is not active; Problem what keeps it from running.
	Note    string `json:"note,omitempty"`
	Problem string `json:"problem,omitempty"`
}

func pluginListRun(ctx context.Context, opts *PluginListOptions) error {
	places, err := pluginPlacesOf(opts.F)
	if err != nil {
		return err
	}
	rows, err := pluginRows(ctx, places)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(opts.F.IO.Out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(opts.F.IO.Out, "No plugins found in %s or %s\n", places.builtinDir, places.dir)
		return nil
	}
	printPluginTable(opts.F.IO.Out, rows)
	return nil
}

// pluginRows lists every plugin with its checksum re-hashed. A built-in
// (or loose) plugin that is used is started to describe itself; its
// launch error becomes the row's problem.
func pluginRows(ctx context.Context, places pluginPlaces) ([]PluginRow, error) {
	all, err := pluginstore.List(places.dirs()...)
	if err != nil {
		return nil, err
	}
	rows := []PluginRow{}
	for _, l := range all {
		row := PluginRow{Name: l.Name, Source: places.sourceOf(l.Candidate), Path: l.Path, Active: l.Active, Note: l.Note, CLIs: []PluginCLI{}}
		if l.Checksum != nil {
			row.SHA256 = hex.EncodeToString(l.Checksum)
		}
		state, _, err := l.VerifyChecksum()
		row.Checksum = state
		if err != nil {
			row.Problem = err.Error()
		}
		if e := l.Installed; e != nil {
			fillFromDescription(&row, e.Description())
			row.InstalledAt = e.InstalledAt.Format(time.RFC3339)
			row.InstalledFrom = e.Source
			if err := l.CheckSafe(); err != nil {
				row.Problem = err.Error()
			}
		} else if l.Active && state == pluginstore.ChecksumOK {
			d, err := pluginstore.DescribeBinary(ctx, l.Path, l.Checksum, places.launch)
			if err != nil {
				row.Problem = "does not start: " + err.Error()
			} else {
				fillFromDescription(&row, d)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func fillFromDescription(row *PluginRow, d sdk.Description) {
	row.Version, row.Protocol, row.SDKVersion, row.Summary = d.Version, d.ProtocolVersion, d.SDKVersion, d.Summary
	row.CLIs = pluginCLIs(d)
}

func printPluginTable(w io.Writer, rows []PluginRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tPROTOCOL\tSOURCE\tCHECKSUM\tCLIS\tNOTE")
	for _, r := range rows {
		note := r.Note
		if r.Problem != "" {
			note = r.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.Version), orDash(protocolString(r.Protocol)),
			r.Source, r.Checksum, formatCLIs(r.CLIs), note)
	}
	tw.Flush()
}

func protocolString(p int) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(p)
}
