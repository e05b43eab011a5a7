package mockrec

import (
	"fmt"
	"strings"
	"testing"
)

// RunScript calls script with the request numbered seq and returns its
// reply. A script that panics fails the test (as "<who>: script panicked
// on request <seq>: ...") and ok is false: the mock answers that request
// with an HTTP 500 instead of crashing the test binary.
func RunScript[R, A any](t testing.TB, who string, seq int, script func(R) A, req R) (reply A, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s: script panicked on request %d: %v", who, seq, p)
			ok = false
		}
	}()
	return script(req), true
}

// Ticks are the deltas of the mocks' slow answer (their SlowReply):
// "tick 1 ", "tick 2 ", ... "tick n ".
func Ticks(n int) []string {
	deltas := make([]string, n)
	for i := range deltas {
		deltas[i] = fmt.Sprintf("tick %d ", i+1)
	}
	return deltas
}

// LastLine returns the last non-blank line of s, trimmed: what the
// default scripts quote of a tool's output.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
