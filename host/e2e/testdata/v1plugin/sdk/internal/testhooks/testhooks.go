// Package testhooks holds switches that tthost's own tests flip to build
// misbehaving plugins. Plugin authors cannot import it (it is internal), so
// none of this is part of the SDK's API.
package testhooks

// ServeProtocolVersions, when set, are the backend protocol versions
// sdk.Serve offers in the go-plugin handshake instead of the ones the SDK
// supports: {2} proves that a host speaking only version 1 refuses the
// plugin clearly; {1, 2} that a host picks the highest version both sides
// speak. A version the SDK does not have is served by the v1 service.
var ServeProtocolVersions []int

// ClientProtocolVersions, when set, are the versions sdk/client offers
// (the host side), for the same tests.
var ClientProtocolVersions []int
