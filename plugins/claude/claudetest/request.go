package claudetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Request is one POST /v1/messages the mock received, parsed.
type Request struct {
	// Seq numbers requests 1, 2, 3, ... in arrival order.
	Seq int
	// At is when the request arrived.
	At time.Time
	// Path is the URL path and query ("/v1/messages?beta=true").
	Path string
	// Header is the request's HTTP header (x-api-key, anthropic-version,
	// anthropic-beta, ...).
	Header http.Header
	// Body is the raw JSON body.
	Body []byte

	// Model, Stream and MaxTokens are the body's fields of those names.
	Model     string
	Stream    bool
	MaxTokens int
	// System is the system prompt's text (its blocks joined by newlines).
	System string
	// Messages is the conversation, in order.
	Messages []Message
	// Tools lists the names of the tools offered to the model.
	Tools []string

	// Usage is the token usage the mock reported in its answer (zero for
	// an HTTP error).
	Usage Usage
	// Outcome is how the mock's answer ended; OutcomeStreaming while it is
	// still being sent.
	Outcome Outcome
}

// Message is one message of a request's conversation.
type Message struct {
	Role   string // "user", "assistant", or "system" (notes Claude Code adds)
	Blocks []Block
}

// Block is one content block. A message whose content is a plain string
// has one text block.
type Block struct {
	// Type is "text", "tool_use", "tool_result", "thinking", "image", ...
	Type string
	// Text is a text block's text, or a tool_result's content as text.
	Text string
	// ID, Name and Input are a tool_use block's.
	ID    string
	Name  string
	Input json.RawMessage
	// ToolUseID and IsError are a tool_result block's.
	ToolUseID string
	IsError   bool
}

// Outcome is how the mock's answer to a request ended.
type Outcome string

const (
	// OutcomeStreaming: the answer is still being sent.
	OutcomeStreaming Outcome = "streaming"
	// OutcomeCompleted: the whole answer was sent (message_stop, or the
	// JSON body of a non-streaming answer).
	OutcomeCompleted Outcome = "completed"
	// OutcomeDisconnected: the client went away before the answer was
	// complete, as when claude is interrupted mid-stream.
	OutcomeDisconnected Outcome = "disconnected"
	// OutcomeHTTPError: the script asked for an HTTP error status.
	OutcomeHTTPError Outcome = "http-error"
	// OutcomeClosed: the mock was closed while the answer was streaming.
	OutcomeClosed Outcome = "closed"
)

// contextPrefixes start the text blocks Claude Code adds to user messages
// by itself (reminders, command output wrappers): not what the user typed.
var contextPrefixes = []string{"<system-reminder>", "<command-name>", "<local-command-stdout>", "<command-message>"}

// SteerPrefix starts the text Claude Code 2.1.330 sends for a user line it
// read while a turn was working (docs/compatibility.md, "Claude Code
// streaming mode"); the steered text follows on the next line.
const SteerPrefix = "The user sent a new message while you were working:\n"

// IsContext reports whether a text block is one Claude Code adds by itself.
func (b Block) IsContext() bool {
	t := strings.TrimSpace(b.Text)
	for _, p := range contextPrefixes {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// UserTexts returns the texts the user typed, in order: every text block
// of the user messages, leaving out the ones Claude Code adds by itself.
// Texts the user sent mid-turn that Claude Code folded into the running
// turn are not among them: see Steers.
func (r Request) UserTexts() []string {
	var out []string
	for _, m := range r.Messages {
		if m.Role != "user" {
			continue
		}
		for _, b := range m.Blocks {
			if b.Type == "text" && !b.IsContext() && !strings.HasPrefix(b.Text, SteerPrefix) && strings.TrimSpace(b.Text) != "" {
				out = append(out, b.Text)
			}
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

// Steers returns, unwrapped and in order, the texts the user sent while a
// turn was working that Claude Code folded into that turn: it sends each
// in a message of its own (role "system" in 2.1.330) after the next tool
// result, starting with SteerPrefix.
func (r Request) Steers() []string {
	var out []string
	for _, m := range r.Messages {
		for _, b := range m.Blocks {
			if b.Type == "text" && strings.HasPrefix(b.Text, SteerPrefix) {
				out = append(out, Unwrap(b.Text))
			}
		}
	}
	return out
}

// Unwrap returns the text the user sent, without the wrapper Claude Code
// puts around a text it read mid-turn (SteerPrefix ... its closing
// advice); other texts come back as they are.
func Unwrap(text string) string {
	rest, ok := strings.CutPrefix(text, SteerPrefix)
	if !ok {
		return text
	}
	if i := strings.Index(rest, "\n\nThis is how Claude Code surfaces"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// ToolResults returns the tool_result blocks of the last user message when
// nothing but messages of Claude Code's own (role "system") follow it: what
// claude sends back after running the tools the model called.
func (r Request) ToolResults() []Block {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		m := r.Messages[i]
		switch m.Role {
		case "system":
			continue
		case "user":
			var out []Block
			for _, b := range m.Blocks {
				if b.Type == "tool_result" {
					out = append(out, b)
				}
			}
			return out
		}
		return nil
	}
	return nil
}

// Contains reports whether any text of the request's messages (texts,
// tool results, tool inputs) contains s.
func (r Request) Contains(s string) bool {
	for _, m := range r.Messages {
		for _, b := range m.Blocks {
			if strings.Contains(b.Text, s) || strings.Contains(string(b.Input), s) {
				return true
			}
		}
	}
	return false
}

// IsSideRequest reports whether the request is one Claude Code makes on
// its own beside the conversation (a title or a topic guess: no tools are
// offered), rather than a step of the agent's turn.
func (r Request) IsSideRequest() bool { return len(r.Tools) == 0 }

// wireRequest is the part of a Messages API request body the mock reads.
type wireRequest struct {
	Model     string          `json:"model"`
	Stream    bool            `json:"stream"`
	MaxTokens int             `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"tools"`
}

type wireBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

// ParseRequest fills r's parsed fields from a Messages API request body.
// It returns an error, never panics, for a body that is not one.
func ParseRequest(body []byte, r *Request) error {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return fmt.Errorf("request body is not a Messages API request: %w", err)
	}
	r.Model, r.Stream, r.MaxTokens = w.Model, w.Stream, w.MaxTokens
	if len(w.System) > 0 {
		blocks, err := parseContent(w.System)
		if err != nil {
			return fmt.Errorf("system: %w", err)
		}
		var texts []string
		for _, b := range blocks {
			texts = append(texts, b.Text)
		}
		r.System = strings.Join(texts, "\n")
	}
	for _, t := range w.Tools {
		name := t.Name
		if name == "" {
			name = t.Type
		}
		r.Tools = append(r.Tools, name)
	}
	for i, m := range w.Messages {
		blocks, err := parseContent(m.Content)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		r.Messages = append(r.Messages, Message{Role: m.Role, Blocks: blocks})
	}
	return nil
}

// parseContent reads message content: a string, or a list of blocks.
func parseContent(raw json.RawMessage) ([]Block, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []Block{{Type: "text", Text: s}}, nil
	}
	var wbs []wireBlock
	if err := json.Unmarshal(raw, &wbs); err != nil {
		return nil, fmt.Errorf("content is neither a string nor a list of blocks: %w", err)
	}
	out := make([]Block, 0, len(wbs))
	for _, wb := range wbs {
		b := Block{Type: wb.Type, Text: wb.Text, ID: wb.ID, Name: wb.Name, Input: wb.Input, ToolUseID: wb.ToolUseID, IsError: wb.IsError}
		if wb.Type == "tool_result" {
			inner, err := parseContent(wb.Content)
			if err != nil {
				return nil, fmt.Errorf("tool_result: %w", err)
			}
			var texts []string
			for _, ib := range inner {
				texts = append(texts, ib.Text)
			}
			b.Text = strings.Join(texts, "\n")
		}
		out = append(out, b)
	}
	return out, nil
}
