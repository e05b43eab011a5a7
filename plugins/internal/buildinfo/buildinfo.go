// Package buildinfo holds what the build stamps into tthost's built-in
// backend plugins. The plugins are built like third-party ones, against
// the SDK only: they import nothing of the host, so the version is set
// here with -ldflags "-X github.com/tthost/tthost/plugins/internal/buildinfo.Version=..."
// (the Makefile stamps the host and the plugins with the same version).
package buildinfo

// Version is the plugin's version; "dev" for builds without ldflags.
var Version = "dev"
