package main

import (
	"github.com/tthost/tthost/plugins/internal/stderrtail"
	"github.com/tthost/tthost/sdk/plugin"
)

// startAgent starts the ACP agent as a plugin.Process: a process group of
// its own (an npm launcher or a node relaunch runs the agent as a child:
// killing only the launcher would orphan it), tagged, so that closing the
// session reaches every process the agent started. Its stderr goes to
// tail (and the session log). Gemini CLI writes its stderr only when it
// exits, so the tail serves exit errors, not live diagnosis.
func startAgent(s settings, tail *stderrtail.Tail) (*plugin.Process, error) {
	cfg := s.process()
	cfg.Stderr = tail
	return plugin.StartProcess(cfg)
}
