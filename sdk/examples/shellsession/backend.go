package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/tthost/tthost/sdk"
)

const (
	// name is the backend's name: what `tthost plugin install` records and
	// what `[agent_clis.sh] backend = "shellsession"` chooses.
	name    = "shellsession"
	version = "0.1.0"
	// cliName is the one CLI this backend serves.
	cliName = "sh"
)

// backend holds nothing of its own: every session owns its shell, and the
// SDK closes every session before the plugin exits, so it needs no
// sdk.Shutdowner.
type backend struct{}

// Describe answers at once and starts nothing: the host calls it after
// every launch, with a short deadline.
func (backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    name,
		Version: version,
		Summary: "keeps one POSIX shell per session and runs each turn's prompt in it (an example backend)",
		CLIs: []sdk.CLI{{
			Name:         cliName,
			Capabilities: []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt},
		}},
	}, nil
}

// OpenSession refuses what it cannot serve with sdk.ErrInvalidConfig, the
// error the host reports as a configuration problem, and otherwise starts
// the shell and returns at once: SessionReady follows when the shell has
// answered, and a turn sent before that waits for it.
func (backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName != cliName {
		return nil, fmt.Errorf("%w: this backend serves the CLI %q, not %q", sdk.ErrInvalidConfig, cliName, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return nil, fmt.Errorf("%w: the command for CLI %q is empty: configure the shell to run, e.g. command = \"sh\"",
			sdk.ErrInvalidConfig, cfg.CLIName)
	}
	ready := sdk.SessionReady{}
	if cfg.ResumeID != "" {
		// Not declared, so a host should not ask; if one does, say what
		// happened instead of pretending.
		ready.ContextLostReason = "the shellsession backend cannot resume: a shell's state ends with its process"
	}
	// The shell gets the plugin's environment without go-plugin's
	// handshake, which it must not inherit, plus the session's (see
	// plugin.ProcessConfig.Env).
	return openSession(settings{
		command: cfg.Command,
		workdir: cfg.Workdir,
		env:     cfg.Env,
		ready:   ready,
	}, events)
}
