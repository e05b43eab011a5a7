package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/townredis"
)

// NewCmdRedis builds `tthost redis` and its subcommands.
func NewCmdRedis(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "redis",
		Short: "Show or stop the town's Redis",
		Long: `The town's Redis is REDIS_URL when set, else [redis].url in tinytown.toml,
else a private server on the town socket (.tt/redis.sock) that tthost starts
when a command needs it: a real redis-server keeping its data in .tt/, or,
without redis-server, an embedded in-memory server.`,
	}
	cmd.AddCommand(NewCmdRedisStatus(f, nil), NewCmdRedisStop(f, nil), newCmdRedisServeEmbedded())
	return cmd
}

// RedisStatusOptions are `tthost redis status`'s flags.
type RedisStatusOptions struct {
	F    *Factory
	JSON bool
}

// RedisStatus is `tthost redis status --json`.
type RedisStatus struct {
	URL     string `json:"url"` // password redacted
	Source  string `json:"source"`
	Managed bool   `json:"managed"` // the town-private server tthost starts and stops
	Running bool   `json:"running"`
	Kind    string `json:"kind,omitempty"`
	Pid     int    `json:"pid,omitempty"`
	Socket  string `json:"socket,omitempty"`
	PidFile string `json:"pidfile,omitempty"`
	Stale   bool   `json:"stale_pidfile,omitempty"`
	Error   string `json:"error,omitempty"` // why an external server did not answer
	Notice  string `json:"notice,omitempty"`
	// Notifications is how workers see writers without a wake signal,
	// measured on the server; nil when it does not run.
	Notifications *RedisNotifications `json:"notifications,omitempty"`
}

// RedisNotifications is notify.Ensure's finding (mode, flags, reason, …);
// Error says why the server could not be asked.
type RedisNotifications struct {
	notify.Status
	Error string `json:"error,omitempty"`
}

// NewCmdRedisStatus builds `tthost redis status`.
func NewCmdRedisStatus(f *Factory, runF func(context.Context, *RedisStatusOptions) error) *cobra.Command {
	opts := &RedisStatusOptions{F: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say which Redis the town uses, whether it runs, and how workers get notified (starts nothing)",
		Long: `status says where the town's Redis is and whether it runs, and checks how
workers see writers that send no wake signal (tt send, tt stop, tt interrupt):
through Redis keyspace notifications, or by polling. The check is the one a
worker runs at start: with [tthost] notifications = "auto" it turns the
notifications on (CONFIG SET, adding to the flags already set) when they are
off and the server permits; with "off" it changes nothing.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, redisStatusRun)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func redisStatusRun(ctx context.Context, opts *RedisStatusOptions) error {
	f := opts.F
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	ep, root, err := f.Endpoint()
	if err != nil {
		return err
	}
	st := RedisStatus{URL: ep.Redacted(), Source: ep.Source, Managed: ep.Managed, Socket: ep.SocketPath}
	if ep.Managed {
		ss, err := townredis.Status(root)
		if err != nil {
			return err
		}
		st.Running, st.Kind, st.Pid, st.PidFile, st.Stale = ss.Running, ss.Kind, ss.Pid, ss.PidFile, ss.Stale
		if ss.SocketPath != "" {
			st.Socket = ss.SocketPath
		}
		if ss.Kind == townredis.KindEmbedded {
			st.Notice = townredis.EmbeddedNotice
		}
	} else {
		st.Kind = townredis.KindExternal
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := ep.Connect(pctx)
		cancel()
		if err != nil {
			st.Error = err.Error()
		} else {
			st.Running = true
			c.Close()
		}
	}
	if st.Running {
		st.Notifications = checkNotifications(ctx, ep, cfg)
	}
	if opts.JSON {
		return printJSON(f.IO.Out, st)
	}
	out := f.IO.Out
	fmt.Fprintf(out, "🔌 Redis of town %s: %s (from %s)\n", cfg.Name, st.URL, st.Source)
	switch {
	case !st.Managed && st.Running:
		fmt.Fprintf(out, "   an external server: it answers; tthost neither starts nor stops it\n")
	case !st.Managed:
		fmt.Fprintf(out, "   an external server: it does not answer: %s\n", st.Error)
	case st.Running && st.Kind == townredis.KindRedisServer:
		fmt.Fprintf(out, "   the town's redis-server, pid %d, on %s\n", st.Pid, st.Socket)
		fmt.Fprintf(out, "   data: append-only file under %s/.tt (kept across restarts)\n", root)
	case st.Running:
		fmt.Fprintf(out, "   the town's embedded in-memory server, pid %d, on %s\n", st.Pid, st.Socket)
		fmt.Fprintf(out, "   warning: %s\n", st.Notice)
	default:
		fmt.Fprintf(out, "   not running; the next tthost command that needs it starts it (e.g. `tthost status`)\n")
		if st.Stale {
			fmt.Fprintf(out, "   (%s names pid %d, which is not the town's Redis: a leftover, removed at the next start)\n", st.PidFile, st.Pid)
		}
	}
	if n := st.Notifications; n != nil {
		fmt.Fprintf(out, "   notifications: %s\n", describeNotifications(n, cfg))
	}
	return nil
}

// checkNotifications runs the detection a worker runs at start
// (notify.Ensure) on the town's server.
func checkNotifications(ctx context.Context, ep townredis.Endpoint, cfg *config.Config) *RedisNotifications {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := ep.Connect(ctx)
	if err != nil {
		return &RedisNotifications{Error: err.Error()}
	}
	defer c.Close()
	st, err := notify.Ensure(ctx, c, town.NewKeys(cfg.Name), notify.EnsureOptions{Policy: notify.Policy(cfg.TTHost.Notifications)})
	if err != nil {
		return &RedisNotifications{Error: err.Error()}
	}
	return &RedisNotifications{Status: st}
}

// describeNotifications says which path the town is on and what it means.
func describeNotifications(n *RedisNotifications, cfg *config.Config) string {
	switch {
	case n.Error != "":
		return "not checked: " + n.Error
	case n.Mode == notify.ModeKeyspace:
		what := n.Status.String()
		if n.Enabled {
			what = fmt.Sprintf("keyspace (flags %q, enabled by tthost now; was %q)", n.Flags, n.Previous)
		}
		return what
	}
	return fmt.Sprintf("polling (%s); writers that send no wake signal (tt send, tt stop, tt interrupt) are seen within %d ms during a turn ([tthost] turn_poll_ms) and at the next safety poll, every %d s, while idle ([tthost] safety_poll_secs)",
		n.Reason, cfg.TTHost.TurnPollMillis, cfg.TTHost.SafetyPollSecs)
}

// RedisStopOptions are `tthost redis stop`'s options.
type RedisStopOptions struct {
	F *Factory
}

// NewCmdRedisStop builds `tthost redis stop`.
func NewCmdRedisStop(f *Factory, runF func(context.Context, *RedisStopOptions) error) *cobra.Command {
	opts := &RedisStopOptions{F: f}
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the town's private Redis server",
		Long: `stop stops the Redis server tthost started for this town (on .tt/redis.sock).
Stop the agents first: their workers need Redis. A redis-server keeps its
data in .tt/ for the next start; the embedded server's data is lost.
An external Redis (REDIS_URL, [redis].url, host/port) is never stopped.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, redisStopRun)
		},
	}
}

func redisStopRun(ctx context.Context, opts *RedisStopOptions) error {
	f := opts.F
	ep, root, err := f.Endpoint()
	if err != nil {
		return err
	}
	out := f.IO.Out
	if !ep.Managed {
		fmt.Fprintf(out, "The town uses %s (from %s), which tthost did not start: nothing to stop.\n", ep.Redacted(), ep.Source)
		return nil
	}
	st, err := townredis.Status(root)
	if err != nil {
		return err
	}
	// Stop also removes a stale pidfile and socket, so it runs either way.
	if err := townredis.Stop(ctx, root); err != nil {
		return fmt.Errorf("stop the town's Redis: %w", err)
	}
	if !st.Running {
		fmt.Fprintln(out, "The town's Redis was not running: nothing to stop.")
		return nil
	}
	switch st.Kind {
	case townredis.KindEmbedded:
		fmt.Fprintf(out, "🛑 Stopped the town's embedded Redis (pid %d); its in-memory data is gone.\n", st.Pid)
	default:
		fmt.Fprintf(out, "🛑 Stopped the town's redis-server (pid %d); its data stays in .tt/ for the next start.\n", st.Pid)
	}
	return nil
}

// newCmdRedisServeEmbedded is the embedded server's process, started by
// townredis.Ensure as `tthost --town ROOT redis serve-embedded` followed by
// townredis.EmbeddedFlag, --unixsocket and --pidfile. Those are Ensure's
// arguments, so cobra leaves them alone and ParseEmbeddedArgs reads them.
// It serves until SIGTERM or SIGINT (Main's context) and ignores SIGHUP,
// as redis-server does: its data is in memory only, and a hang-up is no
// reason to lose the town's state.
func newCmdRedisServeEmbedded() *cobra.Command {
	return &cobra.Command{
		Use:                "serve-embedded",
		Short:              "Run the embedded in-memory Redis (started by tthost itself)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			sock, pidFile, err := townredis.ParseEmbeddedArgs(args)
			if err != nil {
				return usageError{err}
			}
			// Caught here only (Reset takes it from Main's shutdown
			// signals), not ignored: the log says that it arrived.
			signal.Reset(syscall.SIGHUP)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					fmt.Fprintln(cmd.ErrOrStderr(), "received SIGHUP: ignored (the embedded server stops on SIGTERM or `tthost redis stop`)")
				}
			}()
			return townredis.ServeEmbedded(cmd.Context(), sock, pidFile)
		},
	}
}
