package town

import (
	"context"
	"fmt"
	"strings"
)

// Resolved is the result of ResolveAgent. Agent is nil for the supervisor,
// which has no hash.
type Resolved struct {
	ID    string
	Agent *Agent
}

// ResolveAgent finds the agent a user means by ref, in tt's order:
//  1. "supervisor" / "conductor" (trimmed, any case): the supervisor id;
//  2. anything that parses as a UUID: that agent (ErrAgentNotFound if missing);
//  3. a case-insensitive ASCII match against the name, the nickname (or
//     name), the display label, or the 4-character short id.
//
// Step 3 needs exactly one match: none is ErrAgentNotFound, several is
// ErrAmbiguousAgent; both messages list what there is to choose from.
func (s *Store) ResolveAgent(ctx context.Context, ref string) (Resolved, error) {
	if IsSupervisorName(ref) {
		return Resolved{ID: SupervisorID}, nil
	}
	if id, err := ParseID(ref); err == nil {
		a, err := s.GetAgent(ctx, id)
		if err != nil {
			return Resolved{}, err
		}
		return Resolved{ID: a.ID, Agent: a}, nil
	}
	agents, err := s.ListAgents(ctx)
	if err != nil {
		return Resolved{}, fmt.Errorf("resolve agent %q: %w", ref, err)
	}
	var matches []*Agent
	for _, a := range agents {
		if asciiEqualFold(ref, a.Name) || asciiEqualFold(ref, a.DisplayName()) ||
			asciiEqualFold(ref, a.DisplayLabel()) || asciiEqualFold(ref, a.ShortID()) {
			matches = append(matches, a)
		}
	}
	switch len(matches) {
	case 1:
		return Resolved{ID: matches[0].ID, Agent: matches[0]}, nil
	case 0:
		return Resolved{}, fmt.Errorf("%w: no agent matches %q (agents: %s)", ErrAgentNotFound, ref, describeAgents(agents))
	default:
		return Resolved{}, fmt.Errorf("%w: %q matches %d agents: %s; use an id", ErrAmbiguousAgent, ref, len(matches), describeAgents(matches))
	}
}

func describeAgents(agents []*Agent) string {
	if len(agents) == 0 {
		return "none"
	}
	parts := make([]string, len(agents))
	for i, a := range agents {
		parts[i] = fmt.Sprintf("%s (%s)", a.DisplayLabel(), a.ID)
	}
	return strings.Join(parts, ", ")
}

// asciiEqualFold compares like Rust's eq_ignore_ascii_case: only ASCII
// letters fold.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
