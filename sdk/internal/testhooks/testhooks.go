// Package testhooks holds switches that tthost's own tests flip to build
// misbehaving plugins. Plugin authors cannot import it (it is internal), so
// none of this is part of the SDK's API.
package testhooks

// ServeProtocolVersion, when non-zero, makes sdk.Serve offer only this
// backend protocol version in the go-plugin handshake (for example 2, to
// prove that a host speaking only version 1 refuses the plugin clearly).
var ServeProtocolVersion int
