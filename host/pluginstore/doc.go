// Package pluginstore is what tthost keeps on disk about backend plugins:
// it finds plugin binaries (the built-in ones beside tthost, listed in
// tthost-plugins.sha256, and those installed into a plugin directory,
// recorded in plugins.lock.json; see Discover), installs and removes them
// (Install, Remove; a URL is downloaded over HTTPS first, see Fetch),
// re-hashes them (Candidate.VerifyChecksum) and refuses one that someone
// else could have replaced (Candidate.CheckSafe). It launches a plugin only
// to ask it to describe itself (DescribeBinary); running plugins for agents
// is host/backend's job.
package pluginstore
