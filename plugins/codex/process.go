package main

import (
	"fmt"
	"os"

	"github.com/tthost/tthost/plugins/internal/stderrtail"
	"github.com/tthost/tthost/sdk/plugin"
)

// startAppServer starts the session's app-server as a plugin.Process: a
// process group of its own, so that closing the session reaches every
// process codex starts (the npm launcher runs the native binary as a
// child: killing only the launcher would orphan it), and a tag that
// follows codex's tool commands into the sessions codex gives them
// (setsid), where the group kill cannot reach. Its stderr goes to tail
// (and the session log).
func startAppServer(s settings, tail *stderrtail.Tail) (*plugin.Process, error) {
	if s.codexHome != "" {
		// Codex refuses a CODEX_HOME that does not exist.
		if err := os.MkdirAll(s.codexHome, 0o700); err != nil {
			return nil, fmt.Errorf("codex_home: %w", err)
		}
	}
	if s.logPath != "" {
		if err := tail.OpenLog(s.logPath); err != nil {
			return nil, err
		}
	}
	cfg := s.process()
	cfg.Stderr = tail
	p, err := plugin.StartProcess(cfg)
	if err != nil {
		tail.Close()
	}
	return p, err
}
