package acptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/mockrec"
)

// Request is one request the mock received, parsed.
type Request struct {
	// Seq numbers requests 1, 2, 3, ... in arrival order (per list:
	// Requests and Utility are numbered apart).
	Seq    int
	At     time.Time
	Header http.Header
	Body   []byte
	// Action is "streamGenerateContent", "generateContent" or
	// "countTokens"; Model the model in the path.
	Action string
	Model  string
	// Contents is the conversation gemini sent, in order.
	Contents []Content
	// Outcome is how the answer ended; OutcomeStreaming while it runs.
	Outcome Outcome
}

// Content is one entry of a request's contents.
type Content struct {
	Role string // "user" or "model"
	// Texts are the text parts, in order.
	Texts []string
	// Calls are the function calls (model), Responses the function
	// responses (user): name and the JSON of args or response.
	Calls     []Call
	Responses []Call
}

// Call is a function call or response in a request.
type Call struct {
	Name string
	JSON string
}

// sessionContextPrefix starts the text part gemini adds to the first user
// message by itself (date, OS, workspace).
const sessionContextPrefix = "<session_context>"

// parseRequest reads a GenerateContentRequest's contents into r.
func parseRequest(body []byte, r *Request) error {
	var b struct {
		Contents []struct {
			Role  string `json:"role"`
			Parts []struct {
				Text             *string         `json:"text"`
				Thought          bool            `json:"thought"`
				FunctionCall     json.RawMessage `json:"functionCall"`
				FunctionResponse json.RawMessage `json:"functionResponse"`
			} `json:"parts"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return fmt.Errorf("not a GenerateContentRequest: %v", err)
	}
	for _, c := range b.Contents {
		content := Content{Role: c.Role}
		for _, p := range c.Parts {
			switch {
			case p.Text != nil && !p.Thought:
				content.Texts = append(content.Texts, *p.Text)
			case len(p.FunctionCall) > 0:
				content.Calls = append(content.Calls, call(p.FunctionCall, "args"))
			case len(p.FunctionResponse) > 0:
				content.Responses = append(content.Responses, call(p.FunctionResponse, "response"))
			}
		}
		r.Contents = append(r.Contents, content)
	}
	return nil
}

func call(raw json.RawMessage, member string) Call {
	var c map[string]json.RawMessage
	_ = json.Unmarshal(raw, &c)
	var name string
	_ = json.Unmarshal(c["name"], &name)
	return Call{Name: name, JSON: string(c[member])}
}

// UserTexts returns what the user typed, in order: the text of each user
// content, without gemini's session context.
func (r Request) UserTexts() []string {
	var out []string
	for _, c := range r.Contents {
		if c.Role != "user" {
			continue
		}
		var texts []string
		for _, t := range c.Texts {
			if !strings.HasPrefix(t, sessionContextPrefix) {
				texts = append(texts, t)
			}
		}
		if len(texts) > 0 {
			out = append(out, strings.Join(texts, ""))
		}
	}
	return out
}

// LastUserText is the last thing the user typed.
func (r Request) LastUserText() string {
	u := r.UserTexts()
	if len(u) == 0 {
		return ""
	}
	return u[len(u)-1]
}

// ResponsesSinceLastUser returns the function responses after the last
// user text: the tool results of the turn's current step.
func (r Request) ResponsesSinceLastUser() []Call {
	var out []Call
	for _, c := range r.Contents {
		if c.Role != "user" {
			continue
		}
		texts := 0
		for _, t := range c.Texts {
			if !strings.HasPrefix(t, sessionContextPrefix) {
				texts++
			}
		}
		if texts > 0 {
			out = nil
		}
		out = append(out, c.Responses...)
	}
	return out
}

// Words in the last user message that DefaultScript reacts to.
const (
	// MarkToolCall: the model runs the shell command `echo hi`, then
	// answers "tool output: <what it printed>" (or "tool refused: ..." when
	// the call was not run).
	MarkToolCall = "TOOL_CALL"
	// MarkTouch: the model runs `touch made_by_gemini.txt`, then answers.
	MarkTouch = "TOUCH_FILE"
	// MarkSlowStream: SlowDeltas deltas SlowInterval apart, so a test can
	// steer or cancel mid-answer; the stream stops when gemini goes away.
	MarkSlowStream = "SLOW_STREAM"
	// MarkRemember: the model lists the earlier user messages it sees.
	MarkRemember = "REMEMBER"
	// MarkUrgent: a message holding it is answered "urgent: <its first
	// line>", whatever else it holds (a restarted prompt merges the slow
	// prompt with the urgent text).
	MarkUrgent = "URGENT"
)

// The SLOW_STREAM answer: at most SlowDeltas × SlowInterval (20 s).
const (
	SlowDeltas   = 400
	SlowInterval = 50 * time.Millisecond
)

// DefaultScript answers by the last user message:
//
//   - holding URGENT: "urgent: <the line holding it>";
//   - TOOL_CALL or TOUCH_FILE, no tool result yet: a run_shell_command
//     call (`echo hi`, `touch made_by_gemini.txt`);
//   - TOOL_CALL or TOUCH_FILE, with the tool's result: "tool output:
//     <result>";
//   - SLOW_STREAM: "tick 1 tick 2 ...", slowly;
//   - REMEMBER: "I remember: <earlier user messages, joined by " | ">";
//   - otherwise "echo: <its first line>".
func DefaultScript(req Request) Reply {
	last := req.LastUserText()
	switch {
	case strings.Contains(last, MarkUrgent):
		for _, l := range strings.Split(last, "\n") {
			if strings.Contains(l, MarkUrgent) {
				return Reply{Text: "urgent: " + strings.TrimSpace(l)}
			}
		}
	case strings.Contains(last, MarkToolCall), strings.Contains(last, MarkTouch):
		if res := req.ResponsesSinceLastUser(); len(res) > 0 {
			return Reply{Text: "tool output: " + res[len(res)-1].JSON}
		}
		cmd := "echo hi"
		if strings.Contains(last, MarkTouch) {
			cmd = "touch made_by_gemini.txt"
		}
		return Reply{Call: &FunctionCall{Name: "run_shell_command", Args: map[string]any{"command": cmd, "description": "as the test asks"}}}
	case strings.Contains(last, MarkSlowStream):
		return SlowReply(SlowDeltas, SlowInterval)
	case strings.Contains(last, MarkRemember):
		users := req.UserTexts()
		return Reply{Text: "I remember: " + strings.Join(users[:len(users)-1], " | ")}
	}
	first, _, _ := strings.Cut(last, "\n")
	return Reply{Text: "echo: " + first}
}

// SlowReply streams n deltas "tick 1 ", "tick 2 ", ... every apart.
func SlowReply(n int, every time.Duration) Reply {
	return Reply{Deltas: mockrec.Ticks(n), Interval: every}
}
