// Package codextest runs the real Codex CLI in tests, fully offline.
//
// Tests of the Codex backend (plugins/codex) and of the host (host/...)
// drive the real `codex app-server` from @openai/codex, pinned to Version
// and installed by `make test` into .tools/codex. Codex talks only to a
// MockModel: an HTTP server on 127.0.0.1 that answers the Responses API
// (POST /v1/responses, Server-Sent Events) from a script the test chooses,
// records every request, and lets the test wait for requests as events.
//
// A typical test:
//
//	procs := sdktest.TrackProcesses(t)
//	mock := codextest.NewMockModel(t, nil) // nil: DefaultScript
//	home := codextest.NewCodexHome(t, mock)
//	srv := codextest.StartAppServer(t, codextest.AppServerConfig{Home: home, Env: []string{procs.Env()}})
//	srv.Initialize(ctx)
//	...
//
// A test that runs codex through the backend instead gives the backend
// CodexBinary() and the variables of Env(home).
//
// NewCodexHome writes a config.toml that points codex at the mock and turns
// off everything that would reach the network (plugin sync, analytics,
// update checks, WebSockets, unbounded retries). Env adds a proxy guard
// (HTTP(S)_PROXY points at the mock, so any request codex would still send
// elsewhere lands on the mock, is refused and fails the test) and an empty
// HOME, so the login shells codex runs commands in skip the developer's
// dotfiles.
//
// When codex is not installed, the helpers fail the test with how to
// install it; they never skip for that. Under `go test -short` (`make
// check`) they skip every test that needs codex, installed or not.
package codextest
