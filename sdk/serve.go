package sdk

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct{}

// Serve runs the plugin: it performs the go-plugin handshake with the host
// and serves b until the host stops the plugin. It is the one call a
// plugin's main makes, and it does not return.
func Serve(b Backend, opts ...ServeOption) {
	panic("sdk.Serve: not implemented yet")
}
