// Package version holds the tthost version, set at build time with
// -ldflags "-X github.com/tthost/tthost/host/version.Version=...".
package version

// Version is the tthost version; "dev" for builds without ldflags.
var Version = "dev"
