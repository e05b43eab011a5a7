package main

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The stream-json wire: one JSON object per line, both ways
// (docs/protocol.md, "The Claude backend").

// line is one line claude printed, decoded as far as the backend reads it.
// Fields of other types stay zero; unknown types are kept by name only.
type line struct {
	Type      string `json:"type"`
	Subtype   string `json:"subtype"`
	SessionID string `json:"session_id"`
	// ParentToolUseID is set on a sub-agent's messages (the Task tool):
	// they are not the turn's answer.
	ParentToolUseID *string `json:"parent_tool_use_id"`
	IsReplay        bool    `json:"isReplay"`
	UUID            string  `json:"uuid"`

	// assistant, user
	Message *message `json:"message"`
	// stream_event
	Event *streamEvent `json:"event"`
	// result
	IsError      bool     `json:"is_error"`
	Result       string   `json:"result"`
	TotalCostUSD float64  `json:"total_cost_usd"`
	Usage        *usage   `json:"usage"`
	Errors       []string `json:"errors"`
	// system/api_retry
	Attempt      int             `json:"attempt"`
	MaxRetries   int             `json:"max_retries"`
	RetryDelayMS int64           `json:"retry_delay_ms"`
	ErrorStatus  json.RawMessage `json:"error_status"`
	Error        json.RawMessage `json:"error"`
	// control_request, control_response, control_cancel_request
	RequestID string           `json:"request_id"`
	Request   *controlRequest  `json:"request"`
	Response  *controlResponse `json:"response"`
}

// message is an assistant or user message.
type message struct {
	ID      string  `json:"id"`
	Role    string  `json:"role"`
	Content content `json:"content"`
}

// content is a message's content: a string (one text block) or a list
// of blocks.
type content []block

func (c *content) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = content{{Type: "text", Text: s}}
		return nil
	}
	var blocks []block
	if err := json.Unmarshal(b, &blocks); err != nil {
		return fmt.Errorf("message content is neither a string nor a list of blocks: %w", err)
	}
	*c = blocks
	return nil
}

// block is one content block.
type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	IsError   bool            `json:"is_error"`
}

// streamEvent is a raw Messages API event (--include-partial-messages).
type streamEvent struct {
	Type    string `json:"type"`
	Message *struct {
		ID string `json:"id"`
	} `json:"message"`
	Delta *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"delta"`
}

// usage is a result's token usage: the CLI turn's, not the process's
// (docs/compatibility.md).
type usage struct {
	InputTokens         int64 `json:"input_tokens"`
	OutputTokens        int64 `json:"output_tokens"`
	CacheReadTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreationTokens int64 `json:"cache_creation_input_tokens"`
	OutputTokensDetails *struct {
		ThinkingTokens int64 `json:"thinking_tokens"`
	} `json:"output_tokens_details"`
}

// controlRequest is what claude asks (can_use_tool, ...).
type controlRequest struct {
	Subtype     string          `json:"subtype"`
	ToolName    string          `json:"tool_name"`
	DisplayName string          `json:"display_name"`
	Input       json.RawMessage `json:"input"`
	Description string          `json:"description"`
	ToolUseID   string          `json:"tool_use_id"`
	BlockedPath string          `json:"blocked_path"`
}

// controlResponse is claude's answer to a control_request of ours.
type controlResponse struct {
	Subtype   string          `json:"subtype"` // success or error
	RequestID string          `json:"request_id"`
	Response  json.RawMessage `json:"response"`
	Error     string          `json:"error"`
}

// errNotObject is returned for a line that is not a JSON object with a
// type.
var errNotObject = errors.New("not a JSON object with a type")

// decodeLine decodes one line of claude's output. It returns an error,
// never panics, for a line that is not a stream-json object.
func decodeLine(text string) (line, error) {
	var l line
	if err := json.Unmarshal([]byte(text), &l); err != nil {
		return line{}, err
	}
	if l.Type == "" {
		return line{}, errNotObject
	}
	return l, nil
}

// errorText renders a raw JSON error field (a string or an object).
func errorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// Lines the backend writes.

// controlRequestLine asks claude something (initialize, interrupt).
func controlRequestLine(id, subtype string) []byte {
	return mustLine(map[string]any{"type": "control_request", "request_id": id, "request": map[string]any{"subtype": subtype}})
}

// controlSuccessLine answers a control_request of claude's.
func controlSuccessLine(id string, response any) []byte {
	return mustLine(map[string]any{"type": "control_response",
		"response": map[string]any{"subtype": "success", "request_id": id, "response": response}})
}

// controlErrorLine refuses a control_request of claude's.
func controlErrorLine(id, msg string) []byte {
	return mustLine(map[string]any{"type": "control_response",
		"response": map[string]any{"subtype": "error", "request_id": id, "error": msg}})
}

func mustLine(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings
	}
	return append(b, '\n')
}
