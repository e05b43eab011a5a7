// Package acptest runs real ACP agents in tests, fully offline.
//
// Tests of the ACP backend (plugins/acp), and later of the host, drive the
// real Gemini CLI (`gemini --acp`, @google/gemini-cli pinned to
// GeminiVersion) and Zed's claude-code-acp (ClaudeCodeACPVersion), both
// installed by the Makefile into .tools/. Gemini CLI talks only to a
// MockGemini: an HTTP server on 127.0.0.1 that answers the Gemini API
// the way gemini-cli calls it with GOOGLE_GEMINI_BASE_URL set
// (streamGenerateContent with alt=sse for the model's turns,
// generateContent for its model router, countTokens), from a Script the
// test chooses, records every request, and lets the test wait for
// requests as events.
//
// A typical test:
//
//	procs := sdktest.TrackProcesses(t)
//	mock := acptest.NewMockGemini(t, nil) // nil: DefaultScript
//	home := acptest.NewGeminiHome(t)
//	env := acptest.GeminiEnv(home, mock) // HOME, a dummy key, the base URL, the proxy guard
//	command := acptest.GeminiBinary(t) + " --acp"
//
// When an agent is not installed, the helpers fail the test with the make
// target that installs it; they never skip.
package acptest
