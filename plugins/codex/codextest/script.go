package codextest

import (
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// Words in the last user message that DefaultScript reacts to.
const (
	// MarkToolCall: the model calls exec_command {"cmd":"echo hi"}, then
	// answers with text once the output is back.
	MarkToolCall = "TOOL_CALL"
	// MarkSlowStream: the model streams SlowDeltas deltas SlowInterval
	// apart, so a test can steer or interrupt mid-answer; the stream ends
	// early when codex disconnects.
	MarkSlowStream = "SLOW_STREAM"
	// MarkRemember: the model lists every earlier user message it sees in
	// the input, so a test can prove a resumed thread sent its history.
	MarkRemember = "REMEMBER"
)

// The SLOW_STREAM answer: at most SlowDeltas × SlowInterval (10 s) long.
const (
	SlowDeltas   = 400
	SlowInterval = 25 * time.Millisecond
)

// DefaultScript is the script a nil Script means. By the last user message:
//
//   - contains TOOL_CALL, no tool output since: a function call
//     exec_command {"cmd":"echo hi"};
//   - contains TOOL_CALL, tool output since: "tool output: <output>", where
//     <output> is the last line of what the command printed;
//   - contains SLOW_STREAM: "tick 1 tick 2 ...", SlowDeltas deltas
//     SlowInterval apart;
//   - contains REMEMBER: "I remember: <earlier user messages, joined by " | ">";
//   - otherwise: "echo: <its first line>".
func DefaultScript(req Request) Reply {
	last := req.LastUserText()
	switch {
	case strings.Contains(last, MarkToolCall):
		for _, it := range req.sinceLastUser() {
			if it.Type == "function_call_output" {
				return Reply{Text: "tool output: " + mockrec.LastLine(it.Output)}
			}
		}
		return Reply{Call: &FunctionCall{Name: "exec_command", Arguments: `{"cmd":"echo hi"}`}}
	case strings.Contains(last, MarkSlowStream):
		return SlowReply(SlowDeltas, SlowInterval)
	case strings.Contains(last, MarkRemember):
		users := req.UserTexts()
		return Reply{Text: "I remember: " + strings.Join(users[:len(users)-1], " | ")}
	default:
		first, _, _ := strings.Cut(last, "\n")
		return Reply{Text: "echo: " + first}
	}
}

// SlowReply streams n deltas "tick 1 ", "tick 2 ", ... every apart.
func SlowReply(n int, every time.Duration) Reply {
	return Reply{Deltas: mockrec.Ticks(n), Interval: every}
}
