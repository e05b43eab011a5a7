package plugin

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/serverhook"
)

// The in-process harness (sdk/sdktest/inprocess) serves a backend with
// this package's server, in the test's own process, without making the
// server public API: it reaches it through serverhook.
func init() { serverhook.Serve = serveInProcess }

// serveInProcess serves b as debug mode does (go-plugin's test mode),
// without taking over the process: no signals, no parent watch, no exit.
func serveInProcess(b sdk.Backend, log hclog.Logger) (*serverhook.Serving, error) {
	srv := newServer(b, log)
	attach := make(chan *goplugin.ReattachConfig, 1)
	// Serving ends when ctx is cancelled: go-plugin closes the listener
	// (removing the socket file) and stops the gRPC server.
	ctx, cancel := context.WithCancel(context.Background())
	s := startServing(srv, log, &goplugin.ServeTestConfig{Context: ctx, ReattachConfigCh: attach})
	var rc *goplugin.ReattachConfig
	select {
	case rc = <-attach:
	case <-s.served:
		cancel()
		return nil, errors.New("the backend could not be served in process; see the log")
	}
	var once sync.Once
	stop := func(budget time.Duration) {
		once.Do(func() {
			srv.shutdown(budget)
			cancel()
			<-s.served
		})
	}
	return &serverhook.Serving{Reattach: rc, Stop: stop}, nil
}
