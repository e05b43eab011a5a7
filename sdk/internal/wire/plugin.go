// Package wire is the go-plugin glue shared by the plugin side (plugin.Serve)
// and the host side (sdk/client): the handshake and the versioned plugin
// sets. The go-plugin protocol version is the contract's major version, so
// a future tthost.backend.v2 adds one entry to each set and a plugin can
// serve both while hosts migrate.
package wire

import (
	"context"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// PluginName is the name the backend service is dispensed under.
const PluginName = "backend"

// Handshake is what host and plugin must agree on before anything else.
// The cookie is not a secret (go-plugin calls it a UX feature): it lets a
// plugin started by hand say so instead of hanging, and keeps plugins of
// other go-plugin hosts from being mistaken for ours. The value is fixed
// forever; changing it would orphan every released plugin.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "TTHOST_BACKEND_PLUGIN",
	MagicCookieValue: "6b1f1c3e-tthost-backend-d3c0de5a9e74",
}

// HostPIDEnv carries the pid of the host that launched the plugin. The
// stdout guard acts only in a process whose parent has that pid: the
// plugin itself, never a process the plugin starts, even one that
// inherited the whole environment (stdoutguard repeats the name).
const HostPIDEnv = "TTHOST_PLUGIN_HOST_PID"

// SocketDirPrefix names the private directory the host creates for each
// plugin's unix socket (PLUGIN_UNIX_SOCKET_DIR). The plugin removes it on
// exit when the host could not (the host was killed).
const SocketDirPrefix = "tthost-plugin-"

// Versions are the backend protocol versions this SDK and host speak.
var Versions = []int{1}

// ServerPlugins is the plugin side's versioned set: each version in
// versions is served by impl(version). go-plugin offers them all in the
// handshake, and the plugin serves the highest one the host also speaks.
// (Every version is the v1 service today; tests serve it under a future
// version number too.)
func ServerPlugins(impl func(version int) backendv1.BackendServer, versions []int) map[int]plugin.PluginSet {
	sets := map[int]plugin.PluginSet{}
	for _, v := range versions {
		sets[v] = plugin.PluginSet{PluginName: &BackendV1{Impl: impl(v)}}
	}
	return sets
}

// ClientPlugins is the host side's versioned set, for versions.
func ClientPlugins(versions []int) map[int]plugin.PluginSet {
	sets := map[int]plugin.PluginSet{}
	for _, v := range versions {
		sets[v] = plugin.PluginSet{PluginName: &BackendV1{}}
	}
	return sets
}

// BackendV1 binds tthost.backend.v1 to go-plugin over gRPC only.
type BackendV1 struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is set on the plugin side only (a field named Server would hide
	// go-plugin's net/rpc Server method).
	Impl backendv1.BackendServer
}

// GRPCServer registers the backend service on the plugin's gRPC server.
func (p *BackendV1) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	backendv1.RegisterBackendServer(s, p.Impl)
	return nil
}

// GRPCClient returns the host's stub for the backend service.
func (p *BackendV1) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return backendv1.NewBackendClient(c), nil
}

var _ plugin.GRPCPlugin = (*BackendV1)(nil)

// MaxMessageBytes is the largest gRPC message either side sends or accepts
// (gRPC's default is 4 MiB). The host bounds a turn's intake far below it
// ([tthost] max_turn_bytes, 1 MiB by default, at most 8 MiB), so a prompt
// never reaches the limit; the limit is set on both sides so neither
// relies on the other's default.
const MaxMessageBytes = 16 << 20

// Host liveness: the plugin pings an idle connection to its host every
// KeepaliveTime and drops the connection when a ping is not answered within
// KeepaliveTimeout (a host frozen by SIGSTOP, a wedged machine). A session
// whose event stream is gone for ResubscribeGrace, with no new subscriber,
// has its running turn cancelled, so a worker that lost its lease cannot
// leave a turn running behind the worker that took the agent over. A
// plugin serving with a reattach window cancels nothing: when every event
// stream is gone for ResubscribeGrace it detaches and waits for a host to
// reattach (see the plugin package).
// HostLostAfter is the sum: how long after a host stops answering its
// turns are cancelled (the CLI then gets the backend's stop grace).
const (
	KeepaliveTime    = time.Second
	KeepaliveTimeout = 2 * time.Second
	ResubscribeGrace = 2 * time.Second
	HostLostAfter    = KeepaliveTime + KeepaliveTimeout + ResubscribeGrace
)

// DialOptions are the host's gRPC options for a plugin connection: the
// message size limit of both directions.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	)}
}
