package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/agentloop"
	"github.com/tthost/tthost/host/backend"
	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/notify"
	hostreattach "github.com/tthost/tthost/host/reattach"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/version"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// AgentLoopOptions are agent-loop's arguments: exactly Tinytown's.
type AgentLoopOptions struct {
	F         *Factory
	Name      string
	ID        string
	MaxRounds int
}

// NewCmdAgentLoop builds `tthost agent-loop NAME ID MAX_ROUNDS`.
func NewCmdAgentLoop(f *Factory, runF func(context.Context, *AgentLoopOptions) error) *cobra.Command {
	opts := &AgentLoopOptions{F: f}
	return &cobra.Command{
		Use:   "agent-loop NAME ID MAX_ROUNDS",
		Short: "Serve one agent: turn its inbox into CLI turns (the worker)",
		Long: `agent-loop is the worker for one agent, with Tinytown's arguments: it takes
the agent's messages, runs turns of its CLI through a backend plugin, and
records every step in Redis. It ends on a stop request, after MAX_ROUNDS
turns, or at the idle timeout, leaving the agent in state stopped.
SIGTERM, SIGINT and SIGHUP end it the same way: a running turn is
cancelled, its messages go back to the front of the inbox, and it exits 0.
tthost spawn starts it in the background; run it yourself to serve an agent
registered by Tinytown (or to watch it in the foreground).`,
		Args: exactArgs(3, "NAME, ID and MAX_ROUNDS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.ID = args[0], args[1]
			n, err := strconv.Atoi(args[2])
			if err != nil || n < 0 {
				return usageError{fmt.Errorf("MAX_ROUNDS must be a whole number of 0 or more, got %q", args[2])}
			}
			opts.MaxRounds = n
			return dispatch(cmd, opts, runF, agentLoopRun)
		},
	}
}

func agentLoopRun(ctx context.Context, opts *AgentLoopOptions) error {
	f := opts.F
	id, err := town.ParseID(opts.ID)
	if err != nil {
		return fmt.Errorf("invalid agent ID %q: %w", opts.ID, err)
	}
	cfg, store, root, err := f.Town(ctx)
	if err != nil {
		return err
	}
	exe, err := f.Executable()
	if err != nil {
		return err
	}
	log := f.Logger("tthost")
	mgr, err := newBackendManager(f, cfg, root, "agent-loop:"+id, log, nil)
	if err != nil {
		return err
	}
	defer mgr.Close()

	// A signal cancels ctx; the wake token unblocks a waiting BLPOP at once.
	stopWake := context.AfterFunc(ctx, func() { _ = store.Wake(context.Background(), id) })
	defer stopWake()

	// One pub/sub connection tells the loop of writes that carry no wake
	// signal (tt's); a server that refuses keyspace notifications leaves
	// the loop on its polls, and the loop's log says why.
	var wakeups agentloop.Wakeups
	if w, err := watchAgent(ctx, store, cfg.TTHost.Notifications, id, log); err != nil {
		log.Warn("keyspace notifications unavailable: polling", "error", err)
	} else {
		defer w.Close()
		wakeups = w
	}

	loop, err := agentloop.New(agentloop.Options{
		TownDir:   root,
		Config:    cfg,
		Store:     store,
		Backends:  managerBackends{mgr},
		Name:      opts.Name,
		ID:        id,
		MaxRounds: opts.MaxRounds,
		Out:       f.IO.Out,
		Logger:    log,
		ToolDir:   filepath.Dir(exe),
		Wakeups:   wakeups,
	})
	if err != nil {
		return err
	}
	defer rideOutages(ctx, store, cfg, loop.RedisDown, loop.RedisUp)()
	// SIGUSR2 restarts the worker in place, its turn running on.
	rctx, restart := watchRestart(ctx, exe, log, loop.Detach)
	defer restart.Close()
	if err := loop.Run(rctx); err != nil {
		if errors.Is(err, agentloop.ErrLeaseLost) && cfg.TTHost.ReattachWindowSecs > 0 {
			// Another worker took the agent over while this one was frozen;
			// it may have reattached to this worker's plugins: leave them.
			if aerr := mgr.Abandon(); aerr != nil {
				log.Warn("let go of the plugins", "error", aerr)
			}
		}
		return err
	}
	if restart.Asked() {
		return restart.Exec(mgr.Detach)
	}
	if ctx.Err() == nil {
		// The agent stopped (stop request, idle timeout, round limit): no
		// serve host should take it up again. A signal leaves it wanted.
		if _, err := store.Unwant(context.WithoutCancel(ctx), id); err != nil {
			log.Warn("release the agent from the serve hosts", "error", err)
		}
	}
	return nil
}

// rideOutages makes a Redis outage something the worker (or host) waits
// out, up to redis_outage_secs, instead of an error; see town.OutageHook.
// A stop (SIGTERM, ctx) during an outage waits for Redis a little while,
// then gives up: what the worker holds stays in flight. The returned
// function releases the stop timer.
func rideOutages(ctx context.Context, store *town.Store, cfg *config.Config, down func(error), up func(time.Duration)) func() bool {
	abandon := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(outageStopGrace, func() { close(abandon) }) })
	store.Client().AddHook(&town.OutageHook{
		Bound:   time.Duration(cfg.TTHost.RedisOutageSecs) * time.Second,
		OnDown:  down,
		OnUp:    up,
		Abandon: abandon,
	})
	return stop
}

// newBackendManager discovers the plugins a worker (agent-loop) or a host
// (serve) launches, and the ones an author runs under a debugger
// (`plugin --debug`, sdk.ReattachEnv).
//
// owner names the process in the town's reattach file (host/reattach): its
// plugins outlive it for [tthost] reattach_window_secs, and its next
// process reattaches to them (backend.Manager.Recover).
func newBackendManager(f *Factory, cfg *config.Config, townDir, owner string, log hclog.Logger, onExit func(string)) (*backend.Manager, error) {
	dirs, err := f.PluginDirs()
	if err != nil {
		return nil, err
	}
	var reattach map[string]client.ReattachInfo
	if v := f.Getenv(sdk.ReattachEnv); v != "" {
		if reattach, err = client.ParseReattach(v); err != nil {
			return nil, err
		}
	}
	return backend.New(backend.Options{
		Dirs:         dirs,
		Logger:       log,
		HostVersion:  version.Version,
		StopGrace:    time.Duration(cfg.TTHost.StopGraceSecs) * time.Second,
		Reattach:     reattach,
		OnPluginExit: onExit,

		ReattachWindow: time.Duration(cfg.TTHost.ReattachWindowSecs) * time.Second,
		StateFile:      hostreattach.Path(townDir, owner),
		Owner:          owner,
		LogDir:         filepath.Join(townDir, ".tt", "logs"),
	})
}

// managerBackends adapts the backend manager to the loop's interface.
type managerBackends struct{ m *backend.Manager }

func (b managerBackends) Select(ctx context.Context, w backend.Want) (backend.Choice, error) {
	return b.m.Select(ctx, w)
}

// Recover reattaches to the plugins the previous process left (once).
func (b managerBackends) Recover(ctx context.Context) error { return b.m.Recover(ctx) }

// PreviousPluginsKnown says whether Recover accounted for the previous
// process's plugins.
func (b managerBackends) PreviousPluginsKnown() bool { return b.m.PreviousPluginsKnown() }

// CloseUnadopted closes the recovered sessions no agent took back.
func (b managerBackends) CloseUnadopted(ctx context.Context) { b.m.CloseUnadopted(ctx) }

func (b managerBackends) ResumeSession(ctx context.Context, agentID, sessionID string, afterSeq uint64) (agentloop.Session, bool, error) {
	s, ok, err := b.m.ResumeSession(ctx, agentID, sessionID, afterSeq)
	if !ok || err != nil {
		return nil, ok, err
	}
	return s, true, nil
}

func (b managerBackends) OpenSession(ctx context.Context, ch backend.Choice, cfg sdk.SessionConfig) (agentloop.Session, error) {
	s, err := b.m.Open(ctx, ch, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// outageStopGrace is how long a worker asked to stop during a Redis outage
// still waits for Redis, to write its outcomes, before it exits anyway.
const outageStopGrace = 10 * time.Second

// agentWakeups is a keyspace-notification watch of one agent, for the
// loop, with the notifier it alone uses.
type agentWakeups struct {
	*notify.Watch
	n *notify.Notifier
}

// watchAgent opens the process's notifier (detecting, and where permitted
// enabling, keyspace notifications) and watches the agent's keys. In poll
// mode the watch never fires and Active is false.
func watchAgent(ctx context.Context, store *town.Store, policy, id string, log hclog.Logger) (*agentWakeups, error) {
	n, err := notify.New(ctx, store.Client(), store.Keys(), notify.Options{Policy: notify.Policy(policy), Log: log.Named("notify")})
	if err != nil {
		return nil, err
	}
	w, err := n.Watch(ctx, id)
	if err != nil {
		_ = n.Close()
		return nil, err
	}
	return &agentWakeups{Watch: w, n: n}, nil
}

// Close ends the watch and the notifier's connection.
func (a *agentWakeups) Close() {
	a.Watch.Close()
	_ = a.n.Close()
}
