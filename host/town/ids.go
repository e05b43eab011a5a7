package town

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// SupervisorID is the fixed id of the supervisor (also called the
// conductor). tt never writes an agent hash for it: it is only a mailbox.
const SupervisorID = "00000000-0000-0000-0000-000000000001"

// NewID returns a fresh random (v4) id in canonical form.
func NewID() string { return uuid.NewString() }

// ParseID accepts every spelling tt's uuid crate accepts (upper case, 32 hex
// digits without hyphens, braced, urn:uuid:) and returns the canonical
// lowercase hyphenated form, the only form keys may be built from.
func ParseID(s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidID, s, err)
	}
	return u.String(), nil
}

// IsID reports whether s parses as an id in any accepted spelling.
func IsID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}

// canonicalOr returns the canonical form of id, or id unchanged when it does
// not parse (so a key is still built, and the lookup simply finds nothing).
func canonicalOr(id string) string {
	if c, err := ParseID(id); err == nil {
		return c
	}
	return id
}

// IsSupervisorName reports whether ref names the supervisor: "supervisor" or
// "conductor", trimmed, in any case. Both names are reserved for agents.
func IsSupervisorName(ref string) bool {
	r := strings.TrimSpace(ref)
	return strings.EqualFold(r, "supervisor") || strings.EqualFold(r, "conductor")
}

// ShortID is the first 4 characters of the canonical id: what tt shows and
// what agent references may use.
func ShortID(id string) string {
	id = canonicalOr(id)
	if len(id) < 4 {
		return id
	}
	return id[:4]
}
