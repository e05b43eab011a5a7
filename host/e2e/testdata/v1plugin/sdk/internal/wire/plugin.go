// Package wire is the go-plugin glue shared by the plugin side (sdk.Serve)
// and the host side (sdk/client): the handshake and the versioned plugin
// sets. The go-plugin protocol version is the contract's major version, so
// a future tthost.backend.v2 adds one entry to each set and a plugin can
// serve both while hosts migrate.
package wire

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	backendv1 "github.com/tthost/tthost/proto/tthost/backend/v1"
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
