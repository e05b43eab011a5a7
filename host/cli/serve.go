package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/fleet"
	"github.com/tthost/tthost/host/internal/procinfo"
	"github.com/tthost/tthost/host/metrics"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/version"
)

// ServeOptions are `tthost serve`'s flags.
type ServeOptions struct {
	F        *Factory
	HostID   string
	Capacity int
	Listen   string
	Labels   []string
	LeaseTTL time.Duration
	// Upgrade restarts the running host of this id in place instead of
	// serving (see RestartSignal).
	Upgrade bool
	// UpgradeTimeout bounds the wait for the restarted host.
	UpgradeTimeout time.Duration
}

// DefaultCapacity is how many agents a host serves when --capacity is not
// given.
const DefaultCapacity = 100

// NewCmdServe builds `tthost serve`.
func NewCmdServe(f *Factory, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{F: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a host: serve the town's wanted agents over shared plugin processes",
		Long: `serve runs a long-lived host for the town: it claims agents registered with
` + "`tthost spawn`" + ` or ` + "`tthost adopt`" + ` (up to --capacity), runs the agent loop of
each as a goroutine over one plugin process per backend, and renews the
leases of all of them with one heartbeat. Several hosts may serve one town
through the same Redis: each claims a fair share, and when a host dies its
agents are taken by the others once its lease TTL has passed.

It runs in the foreground and logs to stderr; each agent's log is
.tt/logs/NAME.log as with agent-loop. SIGTERM, SIGINT and SIGHUP stop it
cleanly: running turns are interrupted, their messages go back to the front
of their queues, and the agents are released for the other hosts.
--listen serves /healthz and /metrics (Prometheus) on that address.

A restart keeps running turns: SIGUSR2 (or ` + "`tthost serve --upgrade`" + `, which
sends it to this town's host of --host-id and waits for it) makes the host
check the tthost binary on disk, leave its sessions and turns to its
plugins, and re-execute that binary with the same pid; the new process
reattaches and carries on. After SIGKILL or a crash, a host started again
with the same --host-id within [tthost] reattach_window_secs does the same.`,
		Example: `  tthost serve
  tthost serve --host-id build-1 --capacity 50 --listen 127.0.0.1:9464
  tthost serve --label cli=codex --lease-ttl 30s
  tthost serve --upgrade --host-id build-1   # after installing a new tthost`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Capacity < 1 {
				return usageError{fmt.Errorf("--capacity must be 1 or more, got %d", opts.Capacity)}
			}
			if opts.LeaseTTL < fleet.MinLeaseTTL {
				return usageError{fmt.Errorf("--lease-ttl must be %s or more, got %s", fleet.MinLeaseTTL, opts.LeaseTTL)}
			}
			if _, err := parseLabels(opts.Labels); err != nil {
				return usageError{err}
			}
			if opts.HostID != "" {
				if err := town.ValidHostID(opts.HostID); err != nil {
					return usageError{err}
				}
			}
			if opts.Upgrade {
				return dispatch(cmd, opts, runF, serveUpgrade)
			}
			return dispatch(cmd, opts, runF, serveRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.HostID, "host-id", "", "the host's name in the town (default: the machine's hostname)")
	fl.IntVar(&opts.Capacity, "capacity", DefaultCapacity, "the most agents this host serves at once")
	fl.StringVar(&opts.Listen, "listen", "", "serve /healthz and /metrics on this address (e.g. 127.0.0.1:9464)")
	fl.StringArrayVar(&opts.Labels, "label", nil, "claim only agents that match KEY=VALUE (cli=codex); repeatable")
	fl.DurationVar(&opts.LeaseTTL, "lease-ttl", fleet.DefaultLeaseTTL, "how long after this host's last heartbeat others may take its agents")
	fl.BoolVar(&opts.Upgrade, "upgrade", false, "restart this town's running host of --host-id on the tthost binary now on disk, keeping its running turns, and wait for it")
	fl.DurationVar(&opts.UpgradeTimeout, "upgrade-timeout", time.Minute, "with --upgrade: how long to wait for the restarted host")
	return cmd
}

// parseLabels reads --label KEY=VALUE flags. The only key agents carry
// today is cli.
func parseLabels(in []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE, e.g. cli=codex", l)
		}
		if k != "cli" {
			return nil, fmt.Errorf("--label %q: unknown key %q (agents are matched on cli)", l, k)
		}
		out[k] = v
	}
	return out, nil
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	f := opts.F
	cfg, store, root, err := f.Town(ctx)
	if err != nil {
		return err
	}
	exe, err := f.Executable()
	if err != nil {
		return err
	}
	labels, _ := parseLabels(opts.Labels)
	hostname, _ := os.Hostname()
	hostID := opts.HostID
	if hostID == "" {
		hostID = sanitizeHostID(hostname)
	}
	log := f.Logger("tthost")

	m := metrics.New(metrics.Options{HostID: hostID, Version: version.Version, Capacity: opts.Capacity})
	mgr, err := newBackendManager(f, cfg, root, "serve:"+hostID, log, m.PluginRestarted)
	if err != nil {
		return err
	}
	defer mgr.Close()

	// One pub/sub connection carries the wakeups of every agent of the
	// host and the claim loop's; without keyspace notifications the
	// agents poll.
	n, err := notify.New(ctx, store.Client(), store.Keys(), notify.Options{Policy: notify.Policy(cfg.TTHost.Notifications), Log: log.Named("notify")})
	if err != nil {
		log.Warn("keyspace notifications unavailable: polling", "error", err)
		n = nil
	} else {
		defer n.Close()
	}

	host, err := fleet.New(fleet.Options{
		TownDir: root, Config: cfg, Store: store, Backends: managerBackends{mgr}, Notifier: n,
		HostID: hostID, Hostname: hostname, Capacity: opts.Capacity, Labels: labels, LeaseTTL: opts.LeaseTTL,
		Listen: opts.Listen, Version: version.Version, ToolDir: filepath.Dir(exe), Logger: log, Metrics: m,
	})
	if err != nil {
		return err
	}
	if opts.Listen != "" {
		addr, err := metrics.Serve(ctx, opts.Listen, m, host.Healthy, log.Named("http"))
		if err != nil {
			return err
		}
		log.Info("serving /healthz and /metrics", "addr", addr.String())
	}
	defer rideOutages(ctx, store, cfg, host.RedisDown, host.RedisUp)()
	fmt.Fprintf(f.IO.ErrOut, "tthost serve: host %s serving town %s (capacity %d, lease TTL %s)\n", hostID, cfg.Name, opts.Capacity, host.LeaseTTL())
	// SIGUSR2 restarts the host in place, its turns running on.
	rctx, restart := watchRestart(ctx, exe, log, host.Detach)
	defer restart.Close()
	if err := host.Run(rctx); err != nil {
		return err
	}
	if restart.Asked() {
		return restart.Exec(mgr.Detach)
	}
	return nil
}

// sanitizeHostID turns a hostname into a valid host id.
func sanitizeHostID(h string) string {
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	id := strings.TrimLeft(b.String(), "._-")
	if len(id) > 128 {
		id = id[:128]
	}
	if id == "" {
		id = "host"
	}
	return id
}

// serveUpgrade restarts the running host of this id in place (RestartSignal)
// and waits until its new process has registered again.
func serveUpgrade(ctx context.Context, opts *ServeOptions) error {
	f := opts.F
	_, store, _, err := f.Town(ctx)
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	hostID := opts.HostID
	if hostID == "" {
		hostID = sanitizeHostID(hostname)
	}
	before, err := liveHost(ctx, store, hostID)
	if err != nil {
		return err
	}
	if before.Hostname != hostname {
		return fmt.Errorf("host %s runs on %s, not on this machine (%s): run --upgrade there", hostID, before.Hostname, hostname)
	}
	if !procinfo.Running(before.PID, "serve") {
		return fmt.Errorf("host %s's record names pid %d, which is not a tthost serve process here: is the host running?", hostID, before.PID)
	}
	// The new process registers with a heartbeat, a write of the host's
	// liveness key: wake on its keyspace event. A server that publishes
	// none leaves the 1 s poll, which also notices a host that exited.
	beats := store.Client().PSubscribe(ctx, "__keyspace@*__:"+store.Keys().HostAlive(hostID))
	defer beats.Close()
	if _, err := beats.Receive(ctx); err != nil {
		return fmt.Errorf("watch host %s: %w", hostID, err)
	}
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	timeout := time.NewTimer(opts.UpgradeTimeout)
	defer timeout.Stop()

	start := time.Now()
	if err := syscall.Kill(before.PID, RestartSignal); err != nil {
		return fmt.Errorf("signal host %s (pid %d): %w", hostID, before.PID, err)
	}
	for {
		r, err := liveHost(ctx, store, hostID)
		if err == nil && r.PID == before.PID && r.Started.After(before.Started) {
			fmt.Fprintf(f.IO.Out, "host %s restarted in place (pid %d): version %s → %s in %s; running turns kept\n",
				hostID, r.PID, before.Version, r.Version, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if !procinfo.Running(before.PID, "serve") {
			return fmt.Errorf("host %s (pid %d) exited instead of restarting: see its log; its plugins keep its turns for [tthost] reattach_window_secs, so start it again with the same --host-id", hostID, before.PID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-beats.Channel():
		case <-poll.C:
		case <-timeout.C:
			return fmt.Errorf("host %s did not come back within %s: see its log (a binary that fails `tthost --version` is refused and the host keeps serving)", hostID, opts.UpgradeTimeout)
		}
	}
}

// liveHost reads the record of a live host.
func liveHost(ctx context.Context, store *town.Store, id string) (town.HostRecord, error) {
	hosts, _, err := store.Hosts(ctx)
	if err != nil {
		return town.HostRecord{}, err
	}
	for _, r := range hosts {
		if r.ID == id && r.Alive {
			return r.HostRecord, nil
		}
	}
	return town.HostRecord{}, fmt.Errorf("no live host %s in this town (see `tthost hosts`)", id)
}
