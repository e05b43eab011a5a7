// Package backend is the host's backend runtime: from the plugins that
// host/pluginstore discovers, its Manager launches each backend once per
// host process (verifying its SHA-256 and, for installed plugins, its
// permissions at every launch, or attaching to one an author runs in debug
// mode), keeps it healthy (a crashed plugin is restarted with backoff on
// next use), chooses the backend for an agent's CLI (Select), and stops
// every plugin with its whole process group when the host is done.
package backend
