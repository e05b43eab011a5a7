package backend

import (
	"context"
	"fmt"

	"github.com/tthost/tthost/sdk"
)

// Choice is the backend chosen for an agent, and why.
type Choice struct {
	// Backend is the backend name ("oneshot", "codex", ...).
	Backend string
	// CLI is the backend's entry for the agent's CLI, with its capabilities.
	CLI sdk.CLI
	// Persistent is true when the backend keeps a live session across turns.
	Persistent bool
	// Fallback is true when persistence was requested but not available.
	Fallback bool
	// Reason says in one sentence why this backend was chosen.
	Reason string
}

// Has reports whether the chosen backend declared a capability for the CLI.
func (c Choice) Has(capability sdk.Capability) bool { return c.CLI.Has(capability) }

// Select chooses the backend for an agent whose CLI is cliName: with
// persistent requested, a plugin that declares the CLI with the
// "persistent" capability; otherwise the one-shot backend. Plugins that
// fail to start are skipped (the reason says so), so a broken optional
// plugin degrades an agent to one-shot instead of stopping it.
func (m *Manager) Select(ctx context.Context, cliName string, persistent bool) (Choice, error) {
	var skipped string
	if persistent {
		for _, name := range m.order {
			if name == OneShot {
				continue
			}
			desc, err := m.Describe(ctx, name)
			if err != nil {
				m.log.Warn("backend plugin unavailable; not considered for persistent sessions", "backend", name, "error", err)
				skipped = fmt.Sprintf(" (plugin %s could not start: %v)", name, err)
				continue
			}
			cli, ok := desc.Lookup(cliName)
			if ok && cli.Name == cliName && cli.Has(sdk.CapPersistent) {
				return Choice{
					Backend:    name,
					CLI:        cli,
					Persistent: true,
					Reason:     fmt.Sprintf("persistent session through the %s backend (plugin %s)", name, desc.Version),
				}, nil
			}
		}
	}
	desc, err := m.Describe(ctx, OneShot)
	if err != nil {
		return Choice{}, fmt.Errorf("start the one-shot backend: %w", err)
	}
	cli, ok := desc.Lookup(cliName)
	if !ok {
		return Choice{}, fmt.Errorf("the one-shot backend does not serve CLI %q", cliName)
	}
	ch := Choice{Backend: OneShot, CLI: cli, Reason: "one-shot subprocess per turn"}
	if persistent {
		ch.Fallback = true
		ch.Reason = fmt.Sprintf("persistent requested but no backend plugin declares persistent sessions for %q%s; falling back to a one-shot subprocess per turn", cliName, skipped)
	}
	return ch, nil
}
