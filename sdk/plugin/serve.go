package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
	"github.com/tthost/tthost/sdk/internal/stdoutguard"
	"github.com/tthost/tthost/sdk/internal/testhooks"
	"github.com/tthost/tthost/sdk/internal/wire"
)

const (
	// shutdownBudget bounds closing every session, and separately the
	// backend's Shutdowner, when the plugin stops.
	shutdownBudget = 5 * time.Second
	// parentPollInterval is how often the plugin checks that its host is
	// still its parent. The host also sets a parent-death signal; the poll
	// is the backstop for when that signal is lost.
	parentPollInterval = 250 * time.Millisecond
	// describeDirectTimeout bounds Describe when run with --describe.
	describeDirectTimeout = 10 * time.Second
)

// realStderr is fd 2 as it was at start. go-plugin later points os.Stderr
// at a pipe of its own; logs must keep going to the real stderr, which the
// host reads and forwards to its logger.
var realStderr = os.Stderr

// defaultLogOutput is where the default logger writes: realStderr, until
// a plugin with a detached log detaches (see sdk.DetachedLogEnv).
var defaultLogOutput = &logOutput{w: realStderr}

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	logger hclog.Logger
}

// WithLogger makes the SDK log through l instead of its default JSON logger
// on stderr. The host parses JSON log lines from the plugin's stderr, so l
// should write JSON there too.
func WithLogger(l hclog.Logger) ServeOption {
	return func(c *serveConfig) { c.logger = l }
}

var logger struct {
	sync.Mutex
	l hclog.Logger
}

// Logger returns the plugin's logger: JSON lines on stderr, which the host
// forwards to its own log under the plugin's name. Backends log through it
// and never print to stdout.
func Logger() hclog.Logger {
	logger.Lock()
	defer logger.Unlock()
	if logger.l == nil {
		logger.l = newDefaultLogger(defaultLogOutput, os.Getenv(sdk.LogLevelEnv))
	}
	return logger.l
}

func setLogger(l hclog.Logger) {
	logger.Lock()
	logger.l = l
	logger.Unlock()
}

func newDefaultLogger(w io.Writer, level string) hclog.Logger {
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		lv = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: lv, JSONFormat: true})
}

// Serve runs the plugin: it performs the go-plugin handshake with the host
// and serves b until the host stops the plugin, the plugin receives
// SIGTERM, or the host process dies. Then it closes every open session
// immediately, calls b's Shutdown if b is a Shutdowner, and exits with
// status 0. It is the one call a plugin's main makes, and it does not
// return. With a reattach window (sdk.ReattachWindowEnv) the plugin
// outlives its host for that window instead, and at its end closes the
// sessions gracefully first (see the package documentation).
//
// Started by hand (without the host's handshake cookie), the binary prints
// its Description as JSON when given --describe, serves in debug mode when
// given --debug or with TTHOST_PLUGIN_DEBUG=1 (see DebugEnv), and otherwise
// explains what it is and exits with status 1.
func Serve(b sdk.Backend, opts ...ServeOption) {
	os.Exit(serve(b, os.Args[1:], opts...))
}

func serve(b sdk.Backend, args []string, opts ...ServeOption) int {
	var cfg serveConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger != nil {
		setLogger(cfg.logger)
	}

	if os.Getenv(wire.Handshake.MagicCookieKey) != wire.Handshake.MagicCookieValue {
		if debugRequested(args) {
			return serveDebug(b, cfg)
		}
		return runDirect(b, args)
	}

	log := Logger()
	srv := newServer(b, log)
	if w := reattachWindow(os.Getenv(sdk.ReattachWindowEnv), log, sdk.ReattachWindowEnv); w > 0 {
		srv.attach = newAttachment(w, log, detachedLog(os.Getenv(sdk.DetachedLogEnv), cfg.logger == nil, log))
		log.Debug("serving with a reattach window", "window", w.String())
	}
	// go-plugin prints its handshake line to os.Stdout and then replaces
	// os.Stdout with a pipe of its own; hand it the real stdout, which the
	// stdout guard set aside before any plugin code could print.
	os.Stdout = stdoutguard.Stdout()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	return startServing(srv, log, nil).waitAndStop(term)
}

// detachedLog returns what to do when the plugin detaches: move the
// default logger's output to the file at path, if one is configured and
// the default logger is in use (a logger given with WithLogger writes
// where its author chose).
func detachedLog(path string, defaultLogger bool, log hclog.Logger) func() {
	return func() {
		if path == "" || !defaultLogger {
			return
		}
		if err := defaultLogOutput.toFile(path); err != nil {
			log.Warn("cannot open the detached log: logging to stderr, which nobody may read now",
				"variable", sdk.DetachedLogEnv, "path", path, "error", err)
		}
	}
}

// serveVersions are the backend protocol versions the plugin offers:
// every version the SDK supports.
func serveVersions() []int {
	if testhooks.ServeProtocolVersions != nil {
		return testhooks.ServeProtocolVersions
	}
	return wire.Versions
}

// serving is a go-plugin server running in the background.
type serving struct {
	srv    *server
	log    hclog.Logger
	parent int
	served chan struct{} // closed when go-plugin's Serve returned
	// getppid and parentPoll watch the parent (tests replace them);
	// servedWait bounds the wait for go-plugin's Serve to return after
	// the gRPC server stopped.
	getppid    func() int
	parentPoll time.Duration
	servedWait time.Duration

	mu   sync.Mutex
	grpc *grpc.Server
}

func newServing(srv *server, log hclog.Logger) *serving {
	return &serving{
		srv: srv, log: log, parent: os.Getppid(), served: make(chan struct{}),
		getppid: os.Getppid, parentPoll: parentPollInterval, servedWait: time.Second,
	}
}

// startServing runs go-plugin's Serve for srv. test is nil for the real
// handshake with a host, and set for debug mode.
func startServing(srv *server, log hclog.Logger, test *goplugin.ServeTestConfig) *serving {
	s := newServing(srv, log)
	go func() {
		defer close(s.served)
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: wire.Handshake,
			VersionedPlugins: wire.ServerPlugins(func(v int) backendv1.BackendServer {
				return versionedServer{server: srv, protocol: v}
			}, serveVersions()),
			GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
				g := grpc.NewServer(append(opts,
					grpc.ChainUnaryInterceptor(gracefulShutdown(srv)),
					grpc.MaxRecvMsgSize(wire.MaxMessageBytes),
					grpc.MaxSendMsgSize(wire.MaxMessageBytes),
					// Notice a host that stops answering (see wire.HostLostAfter).
					grpc.KeepaliveParams(keepalive.ServerParameters{
						Time: wire.KeepaliveTime, Timeout: wire.KeepaliveTimeout,
					}),
				)...)
				s.mu.Lock()
				s.grpc = g
				s.mu.Unlock()
				return g
			},
			Logger: log,
			Test:   test,
		})
	}()
	return s
}

// waitAndStop waits until the host stops the plugin, a signal arrives on
// stop, or the host process dies; then it closes every session, stops the
// gRPC server and returns the exit status. With a reattach window, the
// death of the host detaches the plugin instead (unless it has no session
// to keep), and the plugin stops when the window expires.
func (s *serving) waitAndStop(stop <-chan os.Signal) int {
	// Once the host is gone, a log line to stderr hits a broken pipe, and
	// Go would end the plugin with SIGPIPE before it closed its sessions.
	// Handling SIGPIPE turns that into an EPIPE write error. (Notify, not
	// Ignore: an ignored signal stays ignored in the CLIs a backend execs.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	orphaned := watchParent(ctx, s.parent, s.getppid, s.parentPoll)
	var expired <-chan struct{}
	if s.srv.attach != nil {
		expired = s.srv.attach.Expired()
	}

	var reason string
	graceful := false
	for reason == "" {
		select {
		case <-s.served:
			reason = "the host stopped the plugin"
		case sig := <-stop:
			reason = signalName(sig)
		case <-orphaned:
			orphaned = nil // fires once
			switch {
			case s.srv.attach == nil:
				reason = "the host process is gone"
			case s.srv.openSessions() == 0:
				reason = "the host process is gone and no session is open"
			default:
				s.srv.attach.parentGone()
			}
		case <-expired:
			reason = "the reattach window expired"
			graceful = true
		}
	}
	if s.srv.attach != nil {
		s.srv.attach.stop()
	}
	s.log.Info("plugin stopping", "reason", reason)
	if graceful {
		s.srv.shutdownGraceful(shutdownBudget)
	} else {
		s.srv.shutdown(shutdownBudget)
	}

	// Stopping the gRPC server closes go-plugin's listener, which removes
	// the plugin's unix socket file.
	s.mu.Lock()
	if s.grpc != nil {
		s.grpc.Stop()
	}
	s.mu.Unlock()
	select {
	case <-s.served:
	case <-time.After(s.servedWait):
	}
	removeSocketDir()
	s.log.Info("plugin stopped")
	return 0
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case os.Interrupt:
		return "SIGINT"
	}
	return sig.String()
}

// removeSocketDir removes the private socket directory the tthost host
// made for this plugin, now that the socket in it is gone: a host that was
// killed cannot do it itself. os.Remove removes only an empty directory.
func removeSocketDir() {
	dir := os.Getenv("PLUGIN_UNIX_SOCKET_DIR")
	if strings.HasPrefix(filepath.Base(dir), wire.SocketDirPrefix) {
		_ = os.Remove(dir)
	}
}

// controllerShutdown is go-plugin's RPC for "stop the plugin" (what its
// client's Kill sends). Its handler stops the gRPC server at once.
const controllerShutdown = "/plugin.GRPCController/Shutdown"

// gracefulShutdown runs the SDK's shutdown before go-plugin's Shutdown
// handler stops the gRPC server, so that every session's last events
// (TurnCompleted, Exited) still reach the host.
func gracefulShutdown(srv *server) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == controllerShutdown {
			srv.shutdown(shutdownBudget)
		}
		return handler(ctx, req)
	}
}

// watchParent returns a channel closed when the process's parent is no
// longer parent (the host died and the plugin was reparented). A parent of
// 1 at start means there is no host to watch.
func watchParent(ctx context.Context, parent int, getppid func() int, every time.Duration) <-chan struct{} {
	gone := make(chan struct{})
	if parent <= 1 {
		return gone
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if getppid() != parent {
					close(gone)
					return
				}
			}
		}
	}()
	return gone
}

// describeJSON is the --describe output, a debugging aid for authors.
type describeJSON struct {
	Name            string    `json:"name"`
	Version         string    `json:"version"`
	Summary         string    `json:"summary,omitempty"`
	SDKVersion      string    `json:"sdk_version"`
	ProtocolVersion int       `json:"protocol_version"`
	CLIs            []cliJSON `json:"clis"`
	OptionsSchema   string    `json:"options_schema,omitempty"`
}

type cliJSON struct {
	Name         string           `json:"name"`
	Capabilities []sdk.Capability `json:"capabilities"`
}

// runDirect handles a start without the host: --describe, or an
// explanation. It returns the exit status.
func runDirect(b sdk.Backend, args []string) int {
	if len(args) == 1 && args[0] == "--describe" {
		ctx, cancel := context.WithTimeout(context.Background(), describeDirectTimeout)
		defer cancel()
		d, err := b.Describe(ctx)
		if err != nil {
			fmt.Fprintf(realStderr, "describe failed: %v\n", err)
			return 1
		}
		out := describeJSON{
			Name: d.Name, Version: d.Version, Summary: d.Summary, SDKVersion: sdk.Version,
			ProtocolVersion: sdk.ProtocolVersion, OptionsSchema: d.OptionsSchema, CLIs: []cliJSON{},
		}
		for _, c := range d.CLIs {
			out.CLIs = append(out.CLIs, cliJSON{Name: c.Name, Capabilities: append([]sdk.Capability{}, c.Capabilities...)})
		}
		enc := json.NewEncoder(stdoutguard.Stdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(realStderr, "describe: %v\n", err)
			return 1
		}
		return 0
	}
	name := filepath.Base(os.Args[0])
	fmt.Fprintf(realStderr, "%s is a tthost backend plugin: tthost starts it and talks to it over gRPC, "+
		"so on its own it does nothing. Run `%s --describe` to print the CLIs it serves as JSON, "+
		"`%s --debug` to serve it for a host under a debugger, "+
		"or install it for a town with `tthost plugin install`.\n", name, name, name)
	return 1
}
