package backend

import (
	"context"
	"fmt"
	"strings"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/sdk"
)

// Want is what an agent asks of its backend.
type Want struct {
	// CLI is the agent's CLI name.
	CLI string
	// Persistent is [agent].persistent: a live session across turns.
	Persistent bool
	// Backend is [agent_clis.<cli>].backend: a backend chosen in config, or "".
	Backend string
}

// Choice is the backend chosen for an agent, and why.
type Choice struct {
	// Backend is the backend name ("oneshot", "codex", ...).
	Backend string
	// Instance names the plugin process that serves the agent: the backend
	// name, or "<backend>@<cli>" for a persistent backend, which runs one
	// process per CLI (codex and codex-mini do not share a process).
	Instance string
	// CLI is the backend's entry for the agent's CLI, with its capabilities.
	CLI sdk.CLI
	// Persistent is true when the backend keeps a live session across turns.
	Persistent bool
	// Fallback is true when the wanted backend or persistence was not
	// available and the one-shot backend serves instead.
	Fallback bool
	// Reason says in one sentence why this backend was chosen.
	Reason string
	// Warnings are problems that did not stop the choice but narrowed it,
	// for the agent's events: a plugin directory whose lock file is
	// unusable, so none of its installed plugins could be chosen
	// (Manager.Warnings).
	Warnings []string
}

// Has reports whether the chosen backend declared a capability for the CLI.
func (c Choice) Has(capability sdk.Capability) bool { return c.CLI.Has(capability) }

// instanceKey names the plugin process of a backend for a CLI.
func instanceKey(backend, cli string) string {
	if cli == "" {
		return backend
	}
	return backend + "@" + cli
}

// splitInstance undoes instanceKey.
func splitInstance(key string) (backend, cli string) {
	backend, cli, _ = strings.Cut(key, "@")
	return backend, cli
}

// Select chooses the backend for an agent:
//  1. the backend named in config for the CLI, when it serves the CLI;
//  2. with persistent requested, a plugin that declares the CLI with the
//     "persistent" capability;
//  3. otherwise the one-shot backend.
//
// Plugins that fail to start are skipped and the reason says so, so a
// broken optional plugin degrades an agent to one-shot instead of
// stopping it.
func (m *Manager) Select(ctx context.Context, w Want) (Choice, error) {
	ch, err := m.selectBackend(ctx, w)
	if err == nil {
		ch.Warnings = m.Warnings()
	}
	return ch, err
}

func (m *Manager) selectBackend(ctx context.Context, w Want) (Choice, error) {
	var notes []string
	if w.Backend != "" && w.Backend != pluginstore.OneShot {
		ch, err := m.candidateFor(ctx, w.Backend, w.CLI, false)
		if err == nil {
			ch.Reason = fmt.Sprintf("the %s backend, as [agent_clis.%s] backend says", w.Backend, w.CLI)
			return ch, nil
		}
		notes = append(notes, err.Error())
	}
	if w.Persistent && w.Backend == "" {
		for _, name := range namedFirst(m.order, w.CLI) {
			if name == pluginstore.OneShot {
				continue
			}
			ch, err := m.candidateFor(ctx, name, w.CLI, true)
			if err == nil {
				ch.Reason = fmt.Sprintf("persistent session through the %s backend", name)
				return ch, nil
			}
			if !errorsIsNotServed(err) {
				notes = append(notes, err.Error())
			}
		}
	}
	desc, err := m.Describe(ctx, pluginstore.OneShot)
	if err != nil {
		return Choice{}, fmt.Errorf("start the one-shot backend: %w", err)
	}
	cli, ok := desc.Lookup(w.CLI)
	if !ok {
		return Choice{}, fmt.Errorf("the one-shot backend does not serve CLI %q", w.CLI)
	}
	ch := Choice{Backend: pluginstore.OneShot, Instance: pluginstore.OneShot, CLI: cli, Reason: "one-shot subprocess per turn"}
	switch {
	case w.Backend != "" && w.Backend != pluginstore.OneShot:
		ch.Fallback = true
		ch.Reason = fmt.Sprintf("backend %q named for %q is not available (%s); falling back to a one-shot subprocess per turn",
			w.Backend, w.CLI, strings.Join(notes, "; "))
	case w.Persistent:
		ch.Fallback = true
		ch.Reason = fmt.Sprintf("persistent requested but no backend plugin declares persistent sessions for %q", w.CLI)
		if len(notes) > 0 {
			ch.Reason += " (" + strings.Join(notes, "; ") + ")"
		}
		ch.Reason += "; falling back to a one-shot subprocess per turn"
	}
	return ch, nil
}

// namedFirst orders plugins for a persistent search: the one named after
// the CLI (claude for claude) first, the rest as found. Each plugin tried
// is started to learn what it serves, so trying the likeliest first spares
// an agent of claude starting every other plugin (acp declares any CLI,
// but persistent only for the ones it names).
func namedFirst(order []string, cli string) []string {
	out := make([]string, 0, len(order))
	for _, name := range order {
		if name == cli {
			out = append(out, name)
		}
	}
	for _, name := range order {
		if name != cli {
			out = append(out, name)
		}
	}
	return out
}

// errNotServed: the plugin runs but does not serve the CLI as wanted.
type errNotServed struct{ msg string }

func (e errNotServed) Error() string { return e.msg }

func errorsIsNotServed(err error) bool {
	_, ok := err.(errNotServed)
	return ok
}

// candidateFor checks whether backend serves cli (persistently, when
// persistent), learning its description from a plugin process launched for
// that CLI. The description is cached per backend, so a plugin that does
// not serve a CLI is started once per host to find out, then stopped.
func (m *Manager) candidateFor(ctx context.Context, backend, cli string, persistent bool) (Choice, error) {
	if _, ok := m.candidates[backend]; !ok {
		return Choice{}, fmt.Errorf("no backend plugin named %q is installed", backend)
	}
	desc, cached := m.cachedDescription(backend)
	key := instanceKey(backend, cli)
	if !cached {
		var err error
		if desc, err = m.Describe(ctx, key); err != nil {
			return Choice{}, fmt.Errorf("plugin %s could not start: %v", backend, err)
		}
	}
	entry, ok := desc.Lookup(cli)
	serves := ok && (!persistent || (entry.Name == cli && entry.Has(sdk.CapPersistent)))
	if !serves {
		if !cached {
			m.stopInstance(key)
		}
		if persistent {
			return Choice{}, errNotServed{fmt.Sprintf("the %s backend does not declare persistent sessions for %q", backend, cli)}
		}
		return Choice{}, errNotServed{fmt.Sprintf("the %s backend does not serve %q", backend, cli)}
	}
	return Choice{Backend: backend, Instance: key, CLI: entry, Persistent: entry.Has(sdk.CapPersistent)}, nil
}
