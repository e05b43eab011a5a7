package codextest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Request is one POST /v1/responses the mock received, parsed.
type Request struct {
	// Seq numbers requests 1, 2, 3, ... in arrival order.
	Seq int
	// At is when the request arrived.
	At time.Time
	// Header is the request's HTTP header (authorization, originator,
	// session-id, thread-id, ...).
	Header http.Header
	// Body is the raw JSON body.
	Body []byte

	// Model and ReasoningEffort are the body's model and reasoning.effort.
	Model           string
	ReasoningEffort string
	// Input is the body's input, in order: developer and user messages,
	// earlier assistant messages, function calls and their outputs.
	Input []Item
	// Tools lists the tool names offered to the model (a tool without a
	// name, such as web_search, by its type).
	Tools []string

	// Outcome is how the mock's answer ended; OutcomeStreaming while it is
	// still being sent.
	Outcome Outcome
}

// Item is one element of a request's input.
type Item struct {
	// Type is "message", "function_call", "function_call_output",
	// "reasoning", ...
	Type string
	// Role ("developer", "user", "assistant") and Text (the text parts of
	// the content, joined) are set for messages.
	Role string
	Text string
	// CallID is set for function calls and their outputs; Name and
	// Arguments for calls, Output for outputs.
	CallID    string
	Name      string
	Arguments string
	Output    string
}

// Outcome is how the mock's answer to a request ended.
type Outcome string

const (
	// OutcomeStreaming: the answer is still being sent.
	OutcomeStreaming Outcome = "streaming"
	// OutcomeCompleted: response.completed was sent.
	OutcomeCompleted Outcome = "completed"
	// OutcomeDisconnected: the client went away (the request's context was
	// cancelled) before the answer was complete, as when codex drops the
	// stream on turn/interrupt or turn/steer.
	OutcomeDisconnected Outcome = "disconnected"
	// OutcomeHTTPError: the script asked for an HTTP error status.
	OutcomeHTTPError Outcome = "http-error"
	// OutcomeClosed: the mock was closed while the answer was streaming.
	OutcomeClosed Outcome = "closed"
)

// contextPrefixes start the user messages codex adds on its own (the
// environment, AGENTS.md instructions, a note about an interrupted turn):
// they are not what the user typed.
var contextPrefixes = []string{"<environment_context>", "<user_instructions>", "# AGENTS.md instructions", "<turn_aborted>"}

// IsContext reports whether a user message is one codex adds by itself.
func (it Item) IsContext() bool {
	for _, p := range contextPrefixes {
		if strings.HasPrefix(strings.TrimSpace(it.Text), p) {
			return true
		}
	}
	return false
}

// UserTexts returns the texts of the user messages in the input, in
// order, leaving out the context messages codex adds by itself.
func (r Request) UserTexts() []string {
	var out []string
	for _, it := range r.Input {
		if it.Type == "message" && it.Role == "user" && !it.IsContext() {
			out = append(out, it.Text)
		}
	}
	return out
}

// LastUserText returns the last of UserTexts, or "".
func (r Request) LastUserText() string {
	u := r.UserTexts()
	if len(u) == 0 {
		return ""
	}
	return u[len(u)-1]
}

// HasFunctionOutput reports whether the input holds a function_call_output,
// i.e. codex ran a tool the model called and sends back its result.
func (r Request) HasFunctionOutput() bool { return len(r.FunctionOutputs()) > 0 }

// FunctionOutputs returns the function_call_output items of the input.
func (r Request) FunctionOutputs() []Item {
	var out []Item
	for _, it := range r.Input {
		if it.Type == "function_call_output" {
			out = append(out, it)
		}
	}
	return out
}

// sinceLastUser returns the input items after the last user message.
func (r Request) sinceLastUser() []Item {
	for i := len(r.Input) - 1; i >= 0; i-- {
		it := r.Input[i]
		if it.Type == "message" && it.Role == "user" && !it.IsContext() {
			return r.Input[i+1:]
		}
	}
	return r.Input
}

// wireRequest is the part of a Responses API request body the mock reads.
type wireRequest struct {
	Model     string `json:"model"`
	Reasoning *struct {
		Effort string `json:"effort"`
	} `json:"reasoning"`
	Input []wireItem `json:"input"`
	Tools []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tools"`
}

type wireItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// parseRequest fills r's parsed fields from body.
func parseRequest(body []byte, r *Request) error {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return fmt.Errorf("request body is not a Responses API request: %w", err)
	}
	r.Model = w.Model
	if w.Reasoning != nil {
		r.ReasoningEffort = w.Reasoning.Effort
	}
	for _, t := range w.Tools {
		name := t.Name
		if name == "" {
			name = t.Type
		}
		r.Tools = append(r.Tools, name)
	}
	for _, wi := range w.Input {
		typ := wi.Type
		if typ == "" && wi.Role != "" {
			typ = "message" // the API allows {"role":..., "content":...} without a type
		}
		r.Input = append(r.Input, Item{
			Type:      typ,
			Role:      wi.Role,
			Text:      contentText(wi.Content),
			CallID:    wi.CallID,
			Name:      wi.Name,
			Arguments: wi.Arguments,
			Output:    contentText(wi.Output),
		})
	}
	return nil
}

// contentText flattens message content or tool output, which is either a
// string or a list of parts with a text field.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}
