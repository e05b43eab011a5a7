package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// SpawnOptions are `tthost spawn`'s arguments, tt's flags.
type SpawnOptions struct {
	F          *Factory
	Name       string
	CLI        string
	MaxRounds  int
	Role       string
	Nickname   string
	Parent     string
	Foreground bool
	JSON       bool
}

// SpawnResult is what spawn reports (--json).
type SpawnResult struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Nickname  string `json:"nickname"`
	CLI       string `json:"cli"`
	MaxRounds int    `json:"max_rounds"`
	Pid       int    `json:"pid,omitempty"`
	// Hosts is how many serve hosts were alive to claim the agent (no
	// worker of its own was started then).
	Hosts int    `json:"hosts,omitempty"`
	Log   string `json:"log,omitempty"`
}

// NewCmdSpawn builds `tthost spawn NAME`.
func NewCmdSpawn(f *Factory, runF func(context.Context, *SpawnOptions) error) *cobra.Command {
	opts := &SpawnOptions{F: f}
	cmd := &cobra.Command{
		Use:   "spawn NAME",
		Short: "Register an agent and start its worker (agent-loop) in the background",
		Long: `spawn registers a new agent in the town (state starting) and starts its worker,
` + "`tthost agent-loop NAME ID MAX_ROUNDS`" + `, as tt spawn does: detached in its own
session, with its output in .tt/logs/NAME.log. The worker ends after
--max-rounds turns, on ` + "`tthost stop`" + `, or at the idle timeout.

The CLI is --cli, else default_cli from tinytown.toml, else claude; a name
that is not in [agent_clis] is run as a shell command. The names supervisor
and conductor are reserved. tt allows two agents with the same name; tthost
refuses a second one while the first is not stopped, so the name stays a
usable reference.`,
		Example: `  tthost spawn backend
  tthost spawn reviewer --cli codex --role reviewer --max-rounds 20
  tthost spawn helper --foreground`,
		Args: exactArgs(1, "the agent's NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.MaxRounds < 0 {
				return usageError{fmt.Errorf("--max-rounds must be 0 or more, got %d", opts.MaxRounds)}
			}
			return dispatch(cmd, opts, runF, spawnRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.CLI, "cli", "c", "", "the agent's CLI: a name from [agent_clis] or a command (default: default_cli)")
	fl.IntVar(&opts.MaxRounds, "max-rounds", 10, "turns the worker runs before it stops")
	fl.StringVar(&opts.Role, "role", "", "the agent's role id (reviewer, researcher, ...)")
	fl.StringVar(&opts.Nickname, "nickname", "", "the agent's nickname (default: derived from its id)")
	fl.StringVar(&opts.Parent, "parent", "", "the agent that spawned this one (name, nickname or id)")
	fl.BoolVar(&opts.Foreground, "foreground", false, "run the worker in this terminal and wait for it")
	fl.BoolVar(&opts.JSON, "json", false, "print the result as JSON")
	return cmd
}

func spawnRun(ctx context.Context, opts *SpawnOptions) error {
	f := opts.F
	name := opts.Name
	if err := checkAgentName(name); err != nil {
		return err
	}
	cfg, store, root, err := f.Town(ctx)
	if err != nil {
		return err
	}
	exe, err := f.Executable()
	if err != nil {
		return fmt.Errorf("find the tthost executable to run the worker: %w", err)
	}

	cliRef := strings.TrimSpace(opts.CLI)
	if cliRef == "" {
		cliRef = strings.TrimSpace(cfg.DefaultCLI)
	}
	if cliRef == "" {
		cliRef = "claude"
	}
	cliName := cfg.ResolveCLIName(cliRef)
	if _, ok := cfg.AgentCLIs[cliName]; !ok {
		fmt.Fprintf(f.IO.ErrOut, "note: %q is not in [agent_clis] of tinytown.toml: the worker runs it as a shell command\n", cliName)
	}

	if err := checkNameFree(ctx, store, name, nil); err != nil {
		return err
	}
	var parent string
	if opts.Parent != "" {
		r, err := resolveAgent(ctx, store, opts.Parent)
		if err != nil {
			return fmt.Errorf("--parent: %w", err)
		}
		parent = r.ID
	}

	a, err := store.CreateAgent(ctx, town.AgentSpec{
		Name:          name,
		CLI:           cliName,
		Nickname:      opts.Nickname,
		RoleID:        opts.Role,
		ParentAgentID: parent,
	})
	if err != nil {
		return err
	}
	// Two spawns of one name at once both pass the check above; the
	// younger record gives way, so exactly one survives.
	if err := checkNameFree(ctx, store, name, a); err != nil {
		if derr := store.DeleteAgent(ctx, a.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove the agent record: %w", derr))
		}
		return err
	}
	logDir := filepath.Join(root, ".tt", "logs")
	if err := removeRoundLogs(logDir, name); err != nil {
		fmt.Fprintf(f.IO.ErrOut, "warning: could not delete old round logs: %v\n", err)
	}
	args := []string{"--town", root, "agent-loop", name, a.ID, strconv.Itoa(opts.MaxRounds)}
	res := SpawnResult{ID: a.ID, Name: a.Name, Nickname: a.Nickname, CLI: cliName, MaxRounds: opts.MaxRounds}
	ev := town.NewEvent(town.EventAgentSpawned, fmt.Sprintf("Agent %s spawned (cli %s, up to %d rounds)", a.DisplayLabel(), cliName, opts.MaxRounds))
	ev.AgentID, ev.ParentAgentID, ev.SpawnMode, ev.NewState = a.ID, parent, town.SpawnFresh, town.StateStarting.Debug()

	if opts.Foreground {
		emitBestEffort(ctx, f, store, ev)
		fmt.Fprintf(f.IO.ErrOut, "🚀 Running agent %s in the foreground (id %s, cli %s, up to %d rounds)\n", label(a), a.ID, cliName, opts.MaxRounds)
		grace := time.Duration(cfg.TTHost.StopGraceSecs+5) * time.Second
		if err := runForeground(ctx, f, exe, args, root, grace); err != nil {
			return fmt.Errorf("agent %q exited with an error: %w", name, err)
		}
		fmt.Fprintf(f.IO.ErrOut, "✅ Agent %q completed\n", name)
		return nil
	}

	if err := os.MkdirAll(logDir, 0o755); err != nil {
		_ = store.DeleteAgent(ctx, a.ID)
		return fmt.Errorf("create %s: %w", logDir, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	res.Log = logPath
	// The agent is wanted by the town's serve hosts; one alive that may
	// run its CLI claims it within milliseconds. Without one, a worker of
	// its own serves it here, as tt spawn does.
	if err := store.Want(ctx, town.WantedAgent{ID: a.ID, Name: a.Name, CLI: cliName, MaxRounds: opts.MaxRounds, By: "spawn"}); err != nil {
		_ = store.DeleteAgent(ctx, a.ID)
		return err
	}
	hosts, err := store.AliveServeHosts(ctx, map[string]string{"cli": cliName})
	if err != nil {
		_, _ = store.Unwant(ctx, a.ID)
		_ = store.DeleteAgent(ctx, a.ID)
		return err
	}
	if len(hosts) > 0 {
		emitBestEffort(ctx, f, store, ev)
		res.Hosts = len(hosts)
		if opts.JSON {
			return printJSON(f.IO.Out, res)
		}
		printSpawned(f.IO.Out, a, cliName, fmt.Sprintf("served by the town's hosts (%d alive: %s), up to %d rounds", len(hosts), hostNames(hosts), opts.MaxRounds), logPath, name)
		return nil
	}
	pid, err := startDetached(exe, args, root, logPath, f.Env)
	if err != nil {
		_, _ = store.Unwant(ctx, a.ID)
		// Nothing serves the agent: take the record back so the name is free.
		if derr := store.DeleteAgent(ctx, a.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove the agent record: %w", derr))
		}
		return fmt.Errorf("start the worker for %q: %w", name, err)
	}
	res.Pid = pid
	emitBestEffort(ctx, f, store, ev)

	if opts.JSON {
		return printJSON(f.IO.Out, res)
	}
	printSpawned(f.IO.Out, a, cliName, fmt.Sprintf("pid %d, up to %d rounds", pid, opts.MaxRounds), logPath, name)
	return nil
}

func printSpawned(out io.Writer, a *town.Agent, cliName, worker, logPath, name string) {
	fmt.Fprintf(out, "🚀 Spawned agent %s\n", a.DisplayLabel())
	fmt.Fprintf(out, "   id:       %s\n", a.ID)
	fmt.Fprintf(out, "   nickname: %s\n", a.Nickname)
	fmt.Fprintf(out, "   cli:      %s\n", cliName)
	fmt.Fprintf(out, "   worker:   %s\n", worker)
	fmt.Fprintf(out, "   log:      %s\n", logPath)
	fmt.Fprintf(out, "Give it work with `tthost assign %s \"...\"`; watch it with `tthost status %s`.\n", name, name)
}

// hostNames lists hosts' ids for a message.
func hostNames(hosts []town.HostRecord) string {
	ids := make([]string, len(hosts))
	for i, h := range hosts {
		ids[i] = h.ID
	}
	return strings.Join(ids, ", ")
}

// runForeground runs the worker with this command's stdio and waits. A
// signal to us (ctx) becomes SIGTERM to the worker, which stops gracefully;
// after grace it is killed.
func runForeground(ctx context.Context, f *Factory, exe string, args []string, dir string, grace time.Duration) error {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f.IO.In, f.IO.Out, f.IO.ErrOut
	cmd.Env = append(os.Environ(), f.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = grace
	return cmd.Run()
}

// checkAgentName refuses reserved names and names that cannot be a log
// file's name (.tt/logs/NAME.log).
func checkAgentName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return usageError{errors.New("the agent's NAME must not be blank")}
	case town.IsSupervisorName(name):
		return fmt.Errorf("%q is reserved (supervisor and conductor name the supervisor's mailbox): choose another name", name)
	case strings.ContainsAny(name, "/\x00") || name == "." || name == "..":
		return fmt.Errorf("agent name %q cannot be a file name (its log is .tt/logs/NAME.log): use letters, digits, - or _", name)
	}
	return nil
}

// checkNameFree refuses a name that a live agent (not stopped) has, in any
// case: references are case-insensitive, so it would be ambiguous. With
// self (just created), only live agents created before it count.
func checkNameFree(ctx context.Context, store *town.Store, name string, self *town.Agent) error {
	agents, err := store.ListAgents(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if !strings.EqualFold(a.Name, name) || a.State.Terminal() {
			continue
		}
		if self != nil && (a.ID == self.ID || !createdBefore(a, self)) {
			continue
		}
		return fmt.Errorf("agent %q already exists and is %s (id %s): stop it first (`tthost stop %s`) or choose another name",
			a.Name, a.State, a.ID, a.ID)
	}
	return nil
}

// createdBefore orders agents by creation time, then id: a total order
// every concurrent spawn agrees on.
func createdBefore(a, b *town.Agent) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// removeRoundLogs deletes NAME_round_*.log, the per-turn logs of an
// earlier agent with this name, as tt spawn does.
func removeRoundLogs(logDir, name string) error {
	entries, err := os.ReadDir(logDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	prefix := name + "_round_"
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ".log") && !e.IsDir() {
			if err := os.Remove(filepath.Join(logDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// startDetached starts the worker in its own session (no controlling
// terminal, so no SIGHUP when the terminal closes), stdin /dev/null,
// stdout and stderr into the truncated log. It does not wait: the worker
// outlives this command and is reaped by init once this process exits.
func startDetached(exe string, args []string, dir, logPath string, env []string) (int, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf // stdin stays nil: /dev/null
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return pid, nil
}
