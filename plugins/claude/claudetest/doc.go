// Package claudetest runs the real Claude Code CLI in tests, fully
// offline, and gives any client of the Anthropic Messages API (Claude Code,
// claude-code-acp) a scriptable model to talk to.
//
// Tests of the Claude backend (plugins/claude) and of the host drive the
// real `claude` from @anthropic-ai/claude-code, pinned to Version and
// installed by `make ensure-claude` into .tools/claude (Binary finds it,
// and fails the test with InstallHint when it is missing). Claude talks
// only to a MockAnthropic: an HTTP server on 127.0.0.1 that answers the
// Messages API (POST /v1/messages, streaming or not) from a Script the
// test chooses, records every request, and lets the test wait for
// requests as events.
//
// A typical test:
//
//	procs := sdktest.TrackProcesses(t)
//	mock := claudetest.NewMockAnthropic(t, nil) // nil: DefaultScript
//	home := claudetest.NewHome(t)
//	env := append(claudetest.Env(home, mock), procs.Env())
//	// run claudetest.Binary(t) with env, or give a backend EnvMap(home, mock)
//	req, err := mock.WaitRequest(ctx, func(r claudetest.Request) bool { return r.Contains("hello") })
//
// Env gives claude an empty HOME, the mock's URL and a dummy key, turns
// off claude's other traffic, and adds a proxy guard (HTTP(S)_PROXY point
// at the mock), so anything claude would send elsewhere lands on the mock,
// is refused and fails the test. A request for a path the mock does not
// serve fails the test too.
package claudetest
