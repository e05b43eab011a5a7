package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/townredis"
)

// InitOptions are `tthost init`'s flags.
type InitOptions struct {
	F    *Factory
	Name string
}

// NewCmdInit builds `tthost init`.
func NewCmdInit(f *Factory, runF func(context.Context, *InitOptions) error) *cobra.Command {
	opts := &InitOptions{F: f}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a town in the --town directory (tinytown.toml and .tt/)",
		Long: `init makes the --town directory (default: the current one) a town, as tt init
does: it writes tinytown.toml, creates .tt/ with agents/, logs/ and tasks/,
and adds .tt to .gitignore in a git repository (or where a .gitignore exists).

The town's name is used in every Redis key. Without --name it is
<repo>-<branch> inside a git repository, else the directory's name.

init then makes sure the town's Redis answers and says which one it is:
REDIS_URL when set, else [redis].url, else a private server on the socket
.tt/redis.sock — a real redis-server keeping its data in .tt/ when one is
installed, otherwise an embedded in-memory server whose data is lost when
it stops.`,
		Example: `  tthost init
  tthost init --name demo
  REDIS_URL=redis://127.0.0.1:6379 tthost init`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, initRun)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "the town's name (default: <repo>-<branch>, else the directory name)")
	return cmd
}

func initRun(ctx context.Context, opts *InitOptions) error {
	f := opts.F
	out := f.IO.Out
	root, err := f.TownRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("create the town directory: %w", err)
	}
	name := strings.TrimSpace(opts.Name)
	if opts.Name != "" && name == "" {
		return usageError{errors.New("--name must not be blank")}
	}
	if name == "" {
		name = detectTownName(root)
	}
	if strings.ContainsAny(name, "*?[]\\:") {
		fmt.Fprintf(f.IO.ErrOut, "warning: the town name %q contains one of * ? [ ] \\ : — tt uses the name unescaped in key patterns, so tt may mix this town's keys with another's\n", name)
	}

	cfgPath := filepath.Join(root, config.FileName)
	// Claim the file name first: a concurrent init (or an existing town)
	// makes this fail instead of being overwritten.
	placeholder, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		existing := ""
		if c, lerr := config.Load(root); lerr == nil {
			existing = fmt.Sprintf(" (town %q)", c.Name)
		}
		return fmt.Errorf("%s already exists%s: this directory is already a town, and init never overwrites it; use it as it is, or remove the file to start over", cfgPath, existing)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", cfgPath, err)
	}
	placeholder.Close()
	cfg := config.New(name)
	if err := cfg.Save(cfgPath); err != nil {
		os.Remove(cfgPath)
		return fmt.Errorf("write %s: %w", cfgPath, err)
	}
	for _, d := range []string{".tt", ".tt/agents", ".tt/logs", ".tt/tasks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	fmt.Fprintf(out, "✨ Initialized town %q in %s\n", name, root)
	fmt.Fprintf(out, "   config: %s\n", cfgPath)
	_, _, inRepo := findGitRepo(root)
	added, err := ensureGitignored(root, inRepo)
	switch {
	case err != nil:
		fmt.Fprintf(f.IO.ErrOut, "warning: could not add .tt to .gitignore: %v\n", err)
	case added:
		fmt.Fprintf(out, "   added .tt to %s\n", filepath.Join(root, ".gitignore"))
	}

	if _, err := f.Store(ctx); err != nil {
		return fmt.Errorf("the town is created, but its Redis does not answer: %w\n"+
			"Fix that (or set REDIS_URL / [redis].url in tinytown.toml) and run `tthost status`", err)
	}
	describeRedis(out, f.IO.ErrOut, f.Server())

	fmt.Fprintf(out, "\nNext steps:\n")
	fmt.Fprintf(out, "  tthost spawn backend                 # start an agent (CLI: %s)\n", cfg.ResolveCLIName(cfg.DefaultCLI))
	fmt.Fprintf(out, "  tthost assign backend \"a task\"       # give it work\n")
	fmt.Fprintf(out, "  tthost status                        # watch the town\n")
	return nil
}

// describeRedis says which Redis the town uses and why.
func describeRedis(out, errOut io.Writer, srv townredis.Server) {
	ep := srv.Endpoint
	switch ep.Source {
	case townredis.SourceEnv:
		fmt.Fprintf(out, "🔌 Redis: %s, from REDIS_URL (never saved to tinytown.toml: every tthost and tt process of this town needs it set)\n", ep.Redacted())
	case townredis.SourceConfigURL:
		fmt.Fprintf(out, "🔌 Redis: %s, from [redis].url in tinytown.toml\n", ep.Redacted())
	case townredis.SourceTCP:
		fmt.Fprintf(out, "🔌 Redis: %s, host and port from [redis] in tinytown.toml (tthost neither starts nor stops it)\n", ep.Redacted())
	default:
		how := "already running"
		if srv.Started {
			how = "started now"
		}
		switch srv.Kind {
		case townredis.KindRedisServer:
			fmt.Fprintf(out, "🔌 Redis: the town's private redis-server (pid %d, %s) on %s;\n"+
				"   no REDIS_URL or [redis].url is set, so the town gets its own server, which keeps its data in an append-only file under .tt/\n",
				srv.Pid, how, ep.SocketPath)
		case townredis.KindEmbedded:
			fmt.Fprintf(out, "🔌 Redis: the town's embedded in-memory server (pid %d, %s) on %s;\n"+
				"   no REDIS_URL or [redis].url is set and redis-server is not installed (or [tthost] redis_server = \"embedded\")\n",
				srv.Pid, how, ep.SocketPath)
		default:
			fmt.Fprintf(out, "🔌 Redis: a server that tthost did not start answers on the town socket %s\n", ep.SocketPath)
		}
	}
	if srv.Notice != "" {
		fmt.Fprintf(errOut, "warning: %s\n", srv.Notice)
	}
}

// detectTownName is tt's default town name: "<repo>-<branch>" (with / in
// the branch as -) inside a git repository, else the repository's name when
// no branch is checked out, else the directory's name, else "tinytown".
func detectTownName(dir string) string {
	if top, gitDir, ok := findGitRepo(dir); ok {
		repo := filepath.Base(top)
		if usableName(repo) {
			if br := gitBranch(gitDir); br != "" {
				return repo + "-" + strings.ReplaceAll(br, "/", "-")
			}
			return repo
		}
	}
	if base := filepath.Base(dir); usableName(base) {
		return base
	}
	return "tinytown"
}

func usableName(s string) bool {
	return s != "" && s != "." && s != "/" && s != string(filepath.Separator)
}

// findGitRepo walks up from dir to the work tree holding it: top is the
// work tree's root, gitDir its git directory (a ".git" directory, or the
// one a ".git" file points to, as in worktrees and submodules).
func findGitRepo(dir string) (top, gitDir string, ok bool) {
	for d := dir; ; {
		p := filepath.Join(d, ".git")
		if fi, err := os.Stat(p); err == nil {
			if fi.IsDir() {
				return d, p, true
			}
			if b, err := os.ReadFile(p); err == nil {
				if g, found := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:"); found {
					g = strings.TrimSpace(g)
					if !filepath.IsAbs(g) {
						g = filepath.Join(d, g)
					}
					return d, g, true
				}
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", false
		}
		d = parent
	}
}

// gitBranch is the checked-out branch ("" when HEAD is detached).
func gitBranch(gitDir string) string {
	b, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return ""
	}
	ref, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ref:")
	if !ok {
		return ""
	}
	br, _ := strings.CutPrefix(strings.TrimSpace(ref), "refs/heads/")
	return br
}

// ensureGitignored adds ".tt" to root/.gitignore when the directory is in
// a git repository or already has a .gitignore, unless it is listed.
func ensureGitignored(root string, inRepo bool) (bool, error) {
	p := filepath.Join(root, ".gitignore")
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !inRepo {
			return false, nil
		}
	case err != nil:
		return false, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		switch strings.TrimSpace(line) {
		case ".tt", ".tt/", "/.tt", "/.tt/":
			return false, nil
		}
	}
	add := ".tt\n"
	if len(b) > 0 && b[len(b)-1] != '\n' {
		add = "\n" + add
	}
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	if _, err := fh.WriteString(add); err != nil {
		fh.Close()
		return false, err
	}
	return true, fh.Close()
}
