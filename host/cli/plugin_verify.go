package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/pluginstore"
)

// PluginVerifyOptions are `tthost plugin verify`'s arguments.
type PluginVerifyOptions struct {
	F *Factory
}

// NewCmdPluginVerify builds `tthost plugin verify`.
func NewCmdPluginVerify(f *Factory, runF func(context.Context, *PluginVerifyOptions) error) *cobra.Command {
	opts := &PluginVerifyOptions{F: f}
	return &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every plugin binary against its recorded checksum",
		Long: `verify re-hashes every plugin binary: the built-in ones against
tthost-plugins.sha256 next to tthost, the installed ones (every version)
against plugins.lock.json, and checks that no installed plugin can be
replaced by another user. It prints one line per binary and exits non-zero
if any binary changed, is missing, has no recorded checksum, or is unsafe.
Nothing is started.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, pluginVerifyRun)
		},
	}
}

func pluginVerifyRun(_ context.Context, opts *PluginVerifyOptions) error {
	places, err := pluginPlacesOf(opts.F)
	if err != nil {
		return err
	}
	all, err := pluginstore.List(places.dirs()...)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(opts.F.IO.Out, 0, 4, 2, ' ', 0)
	var problems []string
	for _, l := range all {
		what, detail := verifyOne(l)
		version, ref := "-", l.Name
		if l.Installed != nil {
			version, ref = l.Installed.Version, l.Installed.Ref()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", what, l.Name, version, places.sourceOf(l.Candidate), l.Path)
		if detail != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", ref, detail))
		}
	}
	tw.Flush()
	if failed := len(problems); failed > 0 {
		fmt.Fprintf(opts.F.IO.Out, "\n%s\n", strings.Join(problems, "\n"))
		return &exitError{code: 1, err: fmt.Errorf("%d of %d plugin binaries failed verification", failed, len(all))}
	}
	fmt.Fprintf(opts.F.IO.Out, "All %d plugin binaries match their recorded SHA-256.\n", len(all))
	return nil
}

// verifyOne re-hashes one binary and checks an installed one's
// permissions: the state to print, and what is wrong ("" when nothing).
func verifyOne(l pluginstore.Listed) (state, detail string) {
	st, got, err := l.VerifyChecksum()
	switch {
	case err != nil:
		return string(st), err.Error()
	case st == pluginstore.ChecksumMismatch:
		fix := "install it again from its source (`tthost plugin install`)"
		if l.Installed == nil {
			fix = "rebuild the built-in plugins (`make build`)"
		}
		return string(st), fmt.Sprintf("SHA-256 is %x, %x was recorded: %s if the change is yours, else find out who replaced it", got, l.Checksum, fix)
	case st == pluginstore.ChecksumNone:
		return string(st), "nothing records its SHA-256, so tthost will not run it: install it with `tthost plugin install`"
	case st == pluginstore.ChecksumMissingFile:
		return string(st), "the file is gone: install the plugin again, or `tthost plugin remove` it"
	}
	if err := l.CheckSafe(); err != nil {
		return "UNSAFE", err.Error()
	}
	return string(st), ""
}
