// Package inprocess serves a backend, an sdk.Backend value, in the test's
// own process over real gRPC, and hands back the host's side of the
// connection: a plugin author drives the backend exactly as tthost does,
// without building a binary. It is the SDK's counterpart of go-plugin's
// TestPluginGRPCConn and of Nomad's driver harness.
//
// What is real: the SDK's gRPC server (the one plugin.Serve runs in a
// plugin binary: session table, event numbering and coalescing, error
// codes, closing every session when the plugin stops), go-plugin's gRPC
// transport on a private unix socket, and the host's client (sdk/client:
// sessions, event streams, the sdk error sentinels). What is not: there is
// no plugin process, so no handshake cookie, no checksum, no TLS, no
// stdout protection and no environment of the plugin's own; the processes
// the backend starts are children of the test process. Prove those with
// the built binary (sdktest.Build and the conformance suite).
//
//	func TestTurn(t *testing.T) {
//		p := inprocess.Start(t, mybackend.New())
//		s, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "mycli", Command: "mycli", Workdir: t.TempDir()})
//		...
//	}
//
// The conformance suite runs in process with conformance.Target{Backend: b}.
package inprocess

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/internal/serverhook"

	// Package plugin provides the server (see internal/serverhook).
	_ "github.com/tthost/tthost/sdk/plugin"
)

// StopGrace is how long Start's cleanup gives the backend's sessions to
// close when the test ends.
const StopGrace = 10 * time.Second

// T is the part of testing.TB that Start uses (this package does not
// import testing, so the conformance suite can use Serve in tthost).
type T interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Start serves b and returns the host's side, connected and described.
// When the test ends, the plugin is stopped as a host stops it: every
// session still open is closed, the backend's Shutdown (if it is an
// sdk.Shutdowner) runs, and serving ends.
func Start(t T, b sdk.Backend) *client.Plugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Warnings and errors only: the test's output is for its failures.
	log := hclog.New(&hclog.LoggerOptions{Name: "inprocess", Level: hclog.Warn, Output: os.Stderr})
	s, err := Serve(ctx, b, client.Config{HostVersion: "inprocess", Logger: log})
	if err != nil {
		t.Fatalf("serving the backend in process: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(StopGrace); err != nil {
			t.Fatalf("stopping the in-process plugin: %v", err)
		}
	})
	return s.Plugin()
}

// Served is a backend served in this process, with the host connected.
type Served struct {
	plugin  *client.Plugin
	serving *serverhook.Serving
}

// Serve serves b and connects a host to it (client.Attach, as to a plugin
// in debug mode). Of cfg it uses Logger (the client's and the server's
// log; default: hclog.L()), DescribeTimeout and HostVersion. ctx bounds
// the start. Stop the result when done.
func Serve(ctx context.Context, b sdk.Backend, cfg client.Config) (*Served, error) {
	if b == nil {
		return nil, errors.New("no backend to serve")
	}
	if serverhook.Serve == nil {
		return nil, errors.New("package plugin is not linked in: the server is missing")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.L()
	}
	serving, err := serverhook.Serve(b, cfg.Logger.Named("inprocess-plugin"))
	if err != nil {
		return nil, err
	}
	info, err := reattachInfo(serving.Reattach)
	if err != nil {
		serving.Stop(StopGrace)
		return nil, err
	}
	p, err := client.Attach(ctx, info, cfg)
	if err != nil {
		serving.Stop(StopGrace)
		return nil, err
	}
	return &Served{plugin: p, serving: serving}, nil
}

// Plugin is the host's side: open sessions on it as tthost does. Its Pid
// is the test process's.
func (s *Served) Plugin() *client.Plugin { return s.plugin }

// Stop stops the plugin the way a host does, each step within grace: the
// host closes the sessions it opened (immediately) and disconnects, then
// the SDK closes whatever is still open, runs the backend's Shutdowner and
// stops serving, as plugin.Serve does before a plugin exits. The error
// says which session the host could not close. It may be called more than
// once.
func (s *Served) Stop(grace time.Duration) error {
	err := s.plugin.Stop(grace)
	s.serving.Stop(grace)
	return err
}

func reattachInfo(rc *goplugin.ReattachConfig) (client.ReattachInfo, error) {
	if rc == nil || rc.Addr == nil || rc.Addr.Network() != "unix" {
		return client.ReattachInfo{}, fmt.Errorf("the in-process server did not listen on a unix socket (%v)", rc)
	}
	return client.ReattachInfo{
		Protocol:        string(rc.Protocol),
		ProtocolVersion: rc.ProtocolVersion,
		Pid:             os.Getpid(),
		Addr:            client.ReattachAddr{Network: "unix", String: rc.Addr.String()},
	}, nil
}
