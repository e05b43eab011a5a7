package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/pluginstore"
)

// PluginInstallOptions are `tthost plugin install`'s arguments.
type PluginInstallOptions struct {
	F *Factory
	// Source is PATH, DIR or URL.
	Source string
	// SHA256 is the expected checksum in hex (mandatory for a URL).
	SHA256 string
	Force  bool
	// CACert is a PEM file of extra authorities trusted for a URL.
	CACert string
	JSON   bool
}

// NewCmdPluginInstall builds `tthost plugin install`.
func NewCmdPluginInstall(f *Factory, runF func(context.Context, *PluginInstallOptions) error) *cobra.Command {
	opts := &PluginInstallOptions{F: f}
	cmd := &cobra.Command{
		Use:   "install PATH|DIR|URL",
		Short: "Install a backend plugin into the plugin directory",
		Long: `install checks a plugin binary and copies it into the plugin directory:
PATH is the binary; DIR a directory holding exactly one tthost-backend-*
binary; URL an https:// address to download it from, which needs --sha256.

The binary is copied into a private staging directory inside the plugin
directory and hashed as it is copied (the hash must match --sha256 when
given); the copy is started once to describe itself (its name, version,
protocol and CLIs) and stopped; then the copy is renamed into
<dir>/<name>/<version>/ (a rename within the plugin directory, so the file
appears whole) and recorded with its SHA-256 in <dir>/plugins.lock.json.
The installed file's name comes from what the plugin says (Describe), not
from the name of the file given. It is refused when it is not a tthost
plugin, speaks a protocol this tthost does not, is named like a built-in
backend, or declares a CLI that another plugin serves while tinytown.toml
does not choose between them ([agent_clis.<cli>] backend = "<name>").`,
		Example: `  tthost plugin install ./bin/tthost-backend-aider
  tthost plugin install https://example.com/tthost-backend-aider_linux_amd64 --sha256 9f86d0…`,
		Args: exactArgs(1, "a PATH, DIR or URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Source = args[0]
			return dispatch(cmd, opts, runF, pluginInstallRun)
		},
	}
	cmd.Flags().StringVar(&opts.SHA256, "sha256", "", "the binary's expected SHA-256 in hex (required for a URL)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "replace an installed version with other content; install even if another plugin serves one of its CLIs")
	cmd.Flags().StringVar(&opts.CACert, "ca-cert", "", "a PEM file of certificate authorities to trust for a URL, besides the system's")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the lock entry as JSON")
	return cmd
}

func pluginInstallRun(ctx context.Context, opts *PluginInstallOptions) error {
	f := opts.F
	places, err := pluginPlacesOf(f)
	if err != nil {
		return err
	}
	var want []byte
	if opts.SHA256 != "" {
		want, err = hex.DecodeString(strings.TrimSpace(opts.SHA256))
		if err != nil || len(want) != 32 {
			return usageError{fmt.Errorf("--sha256 %q is not a SHA-256 (64 hex digits)", opts.SHA256)}
		}
	}
	builtins, err := places.builtins()
	if err != nil {
		return err
	}
	chosen, err := chosenBackends(f)
	if err != nil {
		return err
	}
	in := pluginstore.InstallOptions{
		Dir:      places.dir,
		Source:   opts.Source,
		SHA256:   want,
		Force:    opts.Force,
		Builtins: builtins,
		Chosen:   chosen,
		Launch:   places.launch,
		Warn:     func(s string) { fmt.Fprintf(f.IO.ErrOut, "warning: %s\n", s) },
	}
	if isURL(opts.Source) {
		if want == nil {
			return usageError{fmt.Errorf("installing from a URL needs --sha256 HEX, the checksum the plugin's author published: " +
				"tthost does not run a downloaded binary it cannot verify; nothing was downloaded")}
		}
		file, err := download(ctx, f, opts)
		if err != nil {
			return err
		}
		defer os.Remove(file)
		in.File = file
	} else {
		file, manifestSum, err := resolveLocalPlugin(opts.Source)
		if err != nil {
			return err
		}
		in.File = file
		in.Source, _ = filepath.Abs(file)
		if in.SHA256 == nil {
			in.SHA256 = manifestSum // a built plugin directory's own manifest, when it has one
		}
	}
	res, err := pluginstore.Install(ctx, in)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(f.IO.Out, res.Entry)
	}
	printInstalled(f.IO.Out, res)
	return nil
}

func isURL(s string) bool { return strings.Contains(s, "://") }

// chosenBackends is [agent_clis.<cli>] backend of the town's config, when
// the command runs in a town.
func chosenBackends(f *Factory) (map[string]string, error) {
	cfg, err := f.Config()
	if errors.Is(err, config.ErrNotInitialized) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	chosen := map[string]string{}
	for name, cli := range cfg.AgentCLIs {
		if cli.Backend != "" {
			chosen[name] = cli.Backend
		}
	}
	return chosen, nil
}

// resolveLocalPlugin finds the binary a PATH or DIR names. For a DIR that
// holds a tthost-plugins.sha256 manifest listing the binary, the manifest's
// checksum is returned so the install verifies against it.
func resolveLocalPlugin(arg string) (file string, sum []byte, err error) {
	fi, err := os.Stat(arg)
	if err != nil {
		return "", nil, fmt.Errorf("cannot install %s: %w", arg, err)
	}
	if !fi.IsDir() {
		return arg, nil, nil
	}
	entries, err := os.ReadDir(arg)
	if err != nil {
		return "", nil, fmt.Errorf("cannot install %s: %w", arg, err)
	}
	var found []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), pluginstore.BinaryPrefix) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && info.Mode().Perm()&0o111 != 0 {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return "", nil, fmt.Errorf("cannot install %s: the directory holds no executable %s* binary; name the plugin binary itself", arg, pluginstore.BinaryPrefix)
	case 1:
	default:
		slices.Sort(found)
		return "", nil, fmt.Errorf("cannot install %s: the directory holds %d plugin binaries (%s); name the one to install",
			arg, len(found), strings.Join(found, ", "))
	}
	sums, err := pluginstore.ReadManifest(arg)
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(arg, found[0]), sums[found[0]], nil
}

// download fetches the URL into a temp file, drawing a progress bar on
// stderr for large downloads.
func download(ctx context.Context, f *Factory, opts *PluginInstallOptions) (string, error) {
	tmp, err := os.CreateTemp("", "tthost-download-*")
	if err != nil {
		return "", fmt.Errorf("a temp file for the download: %w", err)
	}
	bar := newProgressBar(f.IO.ErrOut, "downloading "+opts.Source)
	_, err = pluginstore.Fetch(ctx, opts.Source, tmp, pluginstore.FetchOptions{CACertFile: opts.CACert, Progress: bar.update})
	bar.finish(err == nil)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("%w; nothing was installed", err)
	}
	return tmp.Name(), nil
}

func printInstalled(w io.Writer, res *pluginstore.Installed) {
	e := res.Entry
	switch {
	case res.Unchanged:
		fmt.Fprintf(w, "%s %s is already installed with this SHA-256; nothing changed\n", e.Name, e.Version)
	case res.Repaired:
		fmt.Fprintf(w, "Restored %s %s (protocol %d): its installed binary was missing or changed\n", e.Name, e.Version, e.Protocol)
	case res.Replaced:
		fmt.Fprintf(w, "Replaced %s %s (protocol %d)\n", e.Name, e.Version, e.Protocol)
	default:
		fmt.Fprintf(w, "Installed %s %s (protocol %d)\n", e.Name, e.Version, e.Protocol)
	}
	fmt.Fprintf(w, "  CLIs:    %s\n", formatCLIs(pluginCLIs(e.Description())))
	fmt.Fprintf(w, "  SHA-256: %s\n", e.SHA256)
	fmt.Fprintf(w, "  Path:    %s\n", res.Path)
	fmt.Fprintf(w, "  Source:  %s\n", e.Source)
}
