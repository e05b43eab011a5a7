package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/tthost/tthost/sdk/internal/stdoutguard"
	"github.com/tthost/tthost/sdk/internal/wire"
)

// Debug mode runs a plugin by hand, typically under a debugger, and lets
// a host use that process instead of launching the plugin itself:
//
//	dlv exec ./tthost-backend-mybackend -- --debug
//
// The plugin serves in go-plugin's test mode: no handshake cookie, no
// TLS, a unix socket in a private directory. It prints one line on stdout,
// TTHOST_REATTACH_PLUGINS='{"<name>":{...}}', and an explanation on
// stderr; a host started with that variable in its environment attaches
// to the running plugin (sdk/client.Attach). The plugin serves until
// Ctrl-C or SIGTERM, closes its sessions, and exits 0; hosts that attached
// and stopped leave it running, so one debugging session can serve many
// host runs. It logs for people (text, level debug unless
// TTHOST_PLUGIN_LOG_LEVEL says otherwise) on its own stderr.
//
// Debug mode is for development only: nothing authenticates the host and
// nothing checks the binary's checksum.

// DebugEnv, set to 1 or true in the environment of a plugin started by
// hand without arguments, serves it in debug mode as --debug does. A host
// never starts a plugin in debug mode, whatever its environment holds.
const DebugEnv = "TTHOST_PLUGIN_DEBUG"

// ReattachEnv names the host's environment variable that lists plugins
// serving in debug mode, as a JSON object from backend name to where the
// plugin listens:
//
//	{"mybackend":{"protocol":"grpc","protocol_version":1,"pid":4242,
//	  "addr":{"network":"unix","string":"/tmp/tthost-plugin-123/plugin456"}}}
//
// A plugin in debug mode prints its entry; merge the objects by hand to
// debug several plugins at once.
const ReattachEnv = "TTHOST_REATTACH_PLUGINS"

// reattachJSON is one entry of ReattachEnv; sdk/client parses the same
// shape (its tests read what a plugin in debug mode prints).
type reattachJSON struct {
	Protocol        string `json:"protocol"`
	ProtocolVersion int    `json:"protocol_version"`
	Pid             int    `json:"pid"`
	Addr            struct {
		Network string `json:"network"`
		String  string `json:"string"`
	} `json:"addr"`
}

// debugRequested reports whether a plugin started by hand should serve in
// debug mode.
func debugRequested(args []string) bool {
	if len(args) == 1 && args[0] == "--debug" {
		return true
	}
	on, _ := strconv.ParseBool(os.Getenv(DebugEnv))
	return on && len(args) == 0
}

// serveDebug serves b in debug mode and returns the exit status.
func serveDebug(b Backend, cfg serveConfig) int {
	// Ctrl-C stops the plugin cleanly; go-plugin's test mode does not eat
	// it as the real mode does.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)

	if cfg.logger == nil {
		setLogger(hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Output: realStderr, Level: debugLevel(os.Getenv(LogLevelEnv)),
		}))
	}
	log := Logger()

	ctx, cancel := context.WithTimeout(context.Background(), describeDirectTimeout)
	d, err := b.Describe(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(realStderr, "describe failed: %v\n", err)
		return 1
	}
	if d.Name == "" {
		fmt.Fprintln(realStderr, "describe returned no name: a host finds a debug plugin by its name")
		return 1
	}

	// A private directory (mode 0700) for the socket, because debug mode
	// has no TLS: only this user can connect. removeSocketDir removes it.
	dir, err := os.MkdirTemp(socketBase(), wire.SocketDirPrefix)
	if err == nil {
		err = os.Setenv("PLUGIN_UNIX_SOCKET_DIR", dir)
	}
	if err != nil {
		fmt.Fprintf(realStderr, "debug mode: socket directory: %v\n", err)
		return 1
	}

	attach := make(chan *plugin.ReattachConfig, 1)
	s := startServing(newServer(b, log), log, &plugin.ServeTestConfig{ReattachConfigCh: attach})
	var rc *plugin.ReattachConfig
	select {
	case rc = <-attach:
	case <-s.served:
		fmt.Fprintln(realStderr, "debug mode: the plugin could not start serving; see the log above")
		removeSocketDir()
		return 1
	}
	line := reattachLine(d.Name, rc)
	printDebugHelp(realStderr, d, rc.Pid, line)
	fmt.Fprintln(stdoutguard.Stdout(), line)
	return s.waitAndStop(stop)
}

// debugLevel is the log level in debug mode: the configured one, else
// debug, since a person is reading.
func debugLevel(configured string) hclog.Level {
	if lv := hclog.LevelFromString(configured); lv != hclog.NoLevel {
		return lv
	}
	return hclog.Debug
}

// reattachLine is the shell assignment a host needs to attach.
func reattachLine(name string, rc *plugin.ReattachConfig) string {
	var e reattachJSON
	e.Protocol = string(rc.Protocol)
	e.ProtocolVersion = rc.ProtocolVersion
	e.Pid = rc.Pid
	e.Addr.Network = rc.Addr.Network()
	e.Addr.String = rc.Addr.String()
	b, _ := json.Marshal(map[string]reattachJSON{name: e}) // strings and ints: cannot fail
	return ReattachEnv + "=" + shellQuote(string(b))
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printDebugHelp(w io.Writer, d Description, pid int, line string) {
	fmt.Fprintf(w, `
%s %s is serving in debug mode (pid %d). A host started with this variable in
its environment uses this process instead of launching the plugin (the line
follows alone on stdout):

    %s

for example:

    export %s
    tthost agent-loop NAME ID ROUNDS

Debug mode is for development only: the socket has no TLS and the host checks
no checksum. Ctrl-C or SIGTERM stops the plugin after closing its sessions.

`, d.Name, d.Version, pid, line, line)
}

// socketBase is the directory for the private socket directory: the
// temporary directory, unless its path is so long that a socket path in it
// would pass the 104-108 byte limit.
func socketBase() string {
	if base := os.TempDir(); len(base) <= 60 {
		return base
	}
	return "/tmp"
}
