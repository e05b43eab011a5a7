// Package serverhook lets an in-process host (sdk/sdktest/inprocess, and
// through it the conformance suite) serve a backend with package plugin's
// gRPC server without that server becoming public API: package plugin
// sets Serve when it is initialised, and the in-process harness, which
// imports package plugin, calls it.
package serverhook

import (
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/tthost/tthost/sdk"
)

// Serving is a backend served in this process.
type Serving struct {
	// Reattach says where it listens, for a host to attach to
	// (sdk/client.Attach).
	Reattach *goplugin.ReattachConfig
	// Stop does what plugin.Serve does when its host stops it: it closes
	// every open session immediately (within budget), calls the backend's
	// Shutdowner, and stops serving. It returns once serving has ended and
	// may be called more than once.
	Stop func(budget time.Duration)
}

// Serve serves b over gRPC in go-plugin's test mode (no handshake
// cookie, no TLS, a unix socket in the temporary directory), logging to
// log. Set by package plugin; nil until that package is initialised.
var Serve func(b sdk.Backend, log hclog.Logger) (*Serving, error)
