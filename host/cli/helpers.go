package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tthost/tthost/host/town"
)

// agentIDEnv is set by a worker on its CLI: commands run by an agent use it
// as the sender (send) and as the default agent (task current), as in tt.
const agentIDEnv = "TINYTOWN_AGENT_ID"

// resolveAgent is store.ResolveAgent with a next step in the error.
func resolveAgent(ctx context.Context, store *town.Store, ref string) (town.Resolved, error) {
	r, err := store.ResolveAgent(ctx, ref)
	switch {
	case err == nil:
		return r, nil
	case errors.Is(err, town.ErrAmbiguousAgent):
		return r, fmt.Errorf("%w\nName the agent by its id or short id instead (`tthost list` shows them)", err)
	case errors.Is(err, town.ErrAgentNotFound):
		return r, fmt.Errorf("%w\nRun `tthost list` to see the town's agents", err)
	}
	return r, err
}

// resolveWorker resolves ref to an agent that has a record: the supervisor
// is only a mailbox, so commands that act on a worker refuse it.
func resolveWorker(ctx context.Context, store *town.Store, ref, verb string) (*town.Agent, error) {
	r, err := resolveAgent(ctx, store, ref)
	if err != nil {
		return nil, err
	}
	if r.Agent == nil {
		return nil, fmt.Errorf("%q is the supervisor, a mailbox without a worker: there is nothing to %s (name an agent; `tthost list` shows them)", ref, verb)
	}
	return r.Agent, nil
}

// agentIDFromEnv reads TINYTOWN_AGENT_ID: "" when unset.
func agentIDFromEnv(f *Factory) (string, error) {
	v := strings.TrimSpace(f.Getenv(agentIDEnv))
	if v == "" {
		return "", nil
	}
	id, err := town.ParseID(v)
	if err != nil {
		return "", fmt.Errorf("%s=%q is not an agent id: unset it, or set it to the agent's UUID", agentIDEnv, v)
	}
	return id, nil
}

// label is how commands name an agent: "backend [Daniel]"-style, from tt's
// display label, plus the short id so two agents never read the same.
func label(a *town.Agent) string {
	if a == nil {
		return "supervisor"
	}
	return fmt.Sprintf("%s (%s)", a.DisplayLabel(), a.ShortID())
}

// resolvedLabel names the target of a resolved reference.
func resolvedLabel(r town.Resolved) string {
	if r.Agent == nil {
		return "supervisor"
	}
	return label(r.Agent)
}

// resolveTaskID accepts a task id in any UUID spelling or a unique prefix
// (at least 4 characters) of one, as shown by `tthost task list`.
func resolveTaskID(ctx context.Context, store *town.Store, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if id, err := town.ParseID(ref); err == nil {
		return id, nil
	}
	if len(ref) < 4 {
		return "", fmt.Errorf("%q is not a task id: give the full id or at least its first 4 characters (`tthost task list` shows them)", ref)
	}
	tasks, err := store.ListTasks(ctx)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, t := range tasks {
		if strings.HasPrefix(t.ID, strings.ToLower(ref)) {
			ids = append(ids, t.ID)
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", fmt.Errorf("%w: no task id starts with %q (`tthost task list` shows the tasks)", town.ErrTaskNotFound, ref)
	}
	return "", fmt.Errorf("task id prefix %q matches %d tasks (%s): give more characters", ref, len(ids), strings.Join(ids, ", "))
}

// printJSON writes v as indented JSON without HTML escaping.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ago says how long ago t was, coarsely ("12s ago"); "never" for zero.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in the future"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// jsonTime formats an optional timestamp for JSON ("" when zero).
func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return town.FormatJSONTime(t)
}

// shortTask is the first 8 characters of a task id, for tables.
func shortTask(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// oneLine shortens text to one line of at most n characters.
func oneLine(text string, n int) string { return town.TruncateSummary(text, n) }

// emitBestEffort emits an event; a failure is a warning, because the
// change the event reports has already happened.
func emitBestEffort(ctx context.Context, f *Factory, store *town.Store, ev town.TownEvent) {
	if err := store.Emit(ctx, ev); err != nil {
		fmt.Fprintf(f.IO.ErrOut, "warning: could not record the %s event: %v\n", ev.Type, err)
	}
}

// problems lists a record's field problems for display.
func problems(ps []town.FieldProblem) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Error())
	}
	return out
}

// plural picks the word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
