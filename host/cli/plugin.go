package cli

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/host/version"
	"github.com/tthost/tthost/sdk"
)

// NewCmdPlugin builds `tthost plugin`, the group of plugin commands.
func NewCmdPlugin(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Install, list, verify and prove backend plugins",
		Long: `Backend plugins are the processes that drive coding CLIs. The built-in ones
(oneshot, codex) sit next to the tthost executable with their checksums in
tthost-plugins.sha256. Others are installed into the plugin directory
($TTHOST_PLUGIN_DIR, else [tthost] plugin_dir, else
~/.local/share/tthost/plugins) as
  <dir>/<name>/<version>/tthost-backend-<name>_v<version>_p<protocol>_<os>_<arch>
and recorded in <dir>/plugins.lock.json with their SHA-256, which the host
checks at every launch.`,
	}
	cmd.AddCommand(
		NewCmdPluginInstall(f, nil),
		NewCmdPluginList(f, nil),
		NewCmdPluginDescribe(f, nil),
		NewCmdPluginVerify(f, nil),
		NewCmdPluginRemove(f, nil),
		NewCmdPluginConformance(f, nil),
	)
	return cmd
}

// pluginPlaces is where the plugin commands look: the built-in directory
// next to tthost, the plugin directory, and how to start a plugin to ask
// it to describe itself.
type pluginPlaces struct {
	builtinDir string
	dir        string
	launch     pluginstore.LaunchOptions
}

func (p pluginPlaces) dirs() []string { return []string{p.builtinDir, p.dir} }

func pluginPlacesOf(f *Factory) (pluginPlaces, error) {
	dirs, err := f.PluginDirs()
	if err != nil {
		return pluginPlaces{}, err
	}
	// A plugin started only to describe itself logs its start and stop;
	// that is noise unless asked for. Failures reach the user as errors,
	// with the tail of the plugin's stderr.
	logger := hclog.NewNullLogger()
	if f.Verbose {
		logger = f.Logger("tthost")
	}
	return pluginPlaces{
		builtinDir: dirs[0],
		dir:        dirs[1],
		launch: pluginstore.LaunchOptions{
			Env:         f.Env,
			Logger:      logger,
			HostVersion: version.Version,
			StopGrace:   5 * time.Second,
		},
	}, nil
}

// builtins are the loose binaries next to tthost.
func (p pluginPlaces) builtins() ([]pluginstore.Candidate, error) {
	all, err := pluginstore.List(p.builtinDir)
	if err != nil {
		return nil, err
	}
	var out []pluginstore.Candidate
	for _, l := range all {
		if l.Installed == nil && l.Active {
			out = append(out, l.Candidate)
		}
	}
	return out, nil
}

// sourceOf says where a plugin comes from, as list and verify print it.
func (p pluginPlaces) sourceOf(c pluginstore.Candidate) string {
	switch {
	case c.Installed != nil:
		return "installed"
	case samePath(c.Dir, p.builtinDir):
		return "built-in"
	}
	return "loose" // a binary placed by hand beside a checksum manifest
}

func samePath(a, b string) bool {
	a, _ = filepath.Abs(a)
	b, _ = filepath.Abs(b)
	return filepath.Clean(a) == filepath.Clean(b)
}

// PluginCLI is one CLI a plugin serves, in --json output.
type PluginCLI struct {
	Name         string   `json:"name"`
	Capabilities []string `json:"capabilities"`
}

func pluginCLIs(d sdk.Description) []PluginCLI {
	out := []PluginCLI{}
	for _, c := range d.CLIs {
		caps := []string{}
		for _, cp := range c.Capabilities {
			caps = append(caps, string(cp))
		}
		out = append(out, PluginCLI{Name: c.Name, Capabilities: caps})
	}
	return out
}

// formatCLIs is "echo (persistent, steer), * (any CLI)".
func formatCLIs(clis []PluginCLI) string {
	var parts []string
	for _, c := range clis {
		name := c.Name
		if name == sdk.AnyCLI {
			name = "* (any CLI)"
		}
		if len(c.Capabilities) > 0 {
			name += " [" + strings.Join(c.Capabilities, ", ") + "]"
		}
		parts = append(parts, name)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// splitRef splits NAME[@VERSION].
func splitRef(ref string) (name, version string) {
	name, version, _ = strings.Cut(ref, "@")
	return name, version
}

// findListed returns the plugin a NAME[@VERSION] names: the active one for
// a bare name, else the installed version.
func findListed(all []pluginstore.Listed, ref string) (pluginstore.Listed, error) {
	name, version := splitRef(ref)
	if version != "" {
		v, err := pluginstore.NormalizeVersion(version)
		if err != nil {
			return pluginstore.Listed{}, usageError{fmt.Errorf("%s: %w", ref, err)}
		}
		version = v
	}
	var names []string
	for _, l := range all {
		if !slices.Contains(names, l.Name) {
			names = append(names, l.Name)
		}
		if l.Name != name {
			continue
		}
		if version == "" && l.Active {
			return l, nil
		}
		if version != "" && l.Installed != nil && l.Installed.Version == version {
			return l, nil
		}
	}
	return pluginstore.Listed{}, fmt.Errorf("no plugin %s is installed (there are: %s); `tthost plugin list` shows them, `tthost plugin install` adds one",
		ref, strings.Join(names, ", "))
}
