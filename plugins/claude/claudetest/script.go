package claudetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// Words in the last user text that DefaultScript reacts to.
const (
	// MarkToolCall: the model calls Bash {"command":"echo hi"}, then
	// answers "tool output: <its last line>" once the result is back.
	MarkToolCall = "TOOL_CALL"
	// MarkSlowStream: the model streams SlowDeltas deltas SlowInterval
	// apart, so a test can steer or interrupt mid-answer; the stream ends
	// early when the client disconnects.
	MarkSlowStream = "SLOW_STREAM"
	// MarkRemember: the model lists every earlier user text it sees, so a
	// test can prove a resumed session sent its history.
	MarkRemember = "REMEMBER"
	// MarkSteerTool: the model says "working on it", then calls Bash
	// {"command":"sleep <SteerToolSleep>"}; once the result is back it
	// answers "steered: <text>" for a text the user sent meanwhile (which
	// Claude Code folds into the tool result's message), else "tool done".
	// A turn to steer into at a tool boundary.
	MarkSteerTool = "STEER_TOOL"
)

// The SLOW_STREAM answer: at most SlowDeltas × SlowInterval (10 s) long.
const (
	SlowDeltas   = 400
	SlowInterval = 25 * time.Millisecond
)

// SteerToolSleep is how long STEER_TOOL's command sleeps, in seconds.
const SteerToolSleep = 3

// DefaultScript is the script a nil Script means. By the last user text
// (LastUserText, unwrapped):
//
//   - contains TOOL_CALL, no tool result in the last message: a Bash call
//     `echo hi`; with one: "tool output: <its last line>";
//   - contains STEER_TOOL: see MarkSteerTool (the texts Claude Code
//     folded into the turn are in Steers);
//   - contains SLOW_STREAM: "tick 1 tick 2 ...", SlowDeltas deltas
//     SlowInterval apart;
//   - contains REMEMBER: "I remember: <earlier user texts, joined by " | ">";
//   - otherwise: "echo: <its first line>".
func DefaultScript(req Request) Reply {
	last := Unwrap(req.LastUserText())
	results := req.ToolResults()
	switch {
	case strings.Contains(last, MarkToolCall):
		if len(results) > 0 {
			return Reply{Text: "tool output: " + mockrec.LastLine(results[len(results)-1].Text)}
		}
		return Reply{ToolUse: &ToolUse{Name: "Bash", Input: `{"command":"echo hi","description":"Say hi"}`}}
	case strings.Contains(last, MarkSteerTool):
		if len(results) == 0 {
			return Reply{Text: "working on it ", ToolUse: &ToolUse{Name: "Bash",
				Input: fmt.Sprintf(`{"command":"sleep %d","description":"Wait a little"}`, SteerToolSleep)}}
		}
		if steers := req.Steers(); len(steers) > 0 {
			first, _, _ := strings.Cut(strings.TrimSpace(steers[len(steers)-1]), "\n")
			return Reply{Text: "steered: " + first}
		}
		return Reply{Text: "tool done"}
	case strings.Contains(last, MarkSlowStream):
		return SlowReply(SlowDeltas, SlowInterval)
	case strings.Contains(last, MarkRemember):
		users := req.UserTexts()
		earlier := make([]string, 0, len(users))
		for _, u := range users[:len(users)-1] {
			earlier = append(earlier, Unwrap(u))
		}
		return Reply{Text: "I remember: " + strings.Join(earlier, " | ")}
	default:
		first, _, _ := strings.Cut(strings.TrimSpace(last), "\n")
		return Reply{Text: "echo: " + first}
	}
}

// SlowReply streams n deltas "tick 1 ", "tick 2 ", ... every apart.
func SlowReply(n int, every time.Duration) Reply {
	return Reply{Deltas: mockrec.Ticks(n), Interval: every}
}
