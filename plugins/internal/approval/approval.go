// Package approval holds what the persistent backends (plugins/codex,
// plugins/claude, plugins/acp) do alike once they have answered a CLI's
// approval request: report it on the turn it belongs to, as a line of the
// turn's transcript and an Approval event, so every backend's transcript
// says the same of an approval and of one whose decision did not come in
// time (approval_timeout_ms). How a backend decides, and what it answers
// when the time runs out, stay in the backend.
package approval

import (
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// OnTurn notes a in pt's transcript and emits it as pt's Approval event.
// The caller makes sure pt still runs (a turn reported completed takes no
// more events); else it emits the event on the session.
func OnTurn(pt *plugin.Turn, a sdk.Approval) {
	pt.Transcript().Note("approval %s `%s`: %s%s", a.Kind, a.Description, a.Decision, timedOut(a))
	pt.Emit(sdk.ApprovalEvent("", a))
}

func timedOut(a sdk.Approval) string {
	if a.TimedOut {
		return " (no decision in time)"
	}
	return ""
}
