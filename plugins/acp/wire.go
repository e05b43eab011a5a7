package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tthost/tthost/sdk"
)

// The parts of ACP (protocol version 1) that this backend reads from the
// agent. Every decoder here takes the agent's bytes, returns an error for
// what it cannot use and never panics (wire_test.go fuzzes them); fields
// it does not read cannot make a valid message look invalid.

// protocolVersion is the ACP major version this client speaks.
const protocolVersion = 1

// ACP error codes this backend acts on.
const (
	codeAuthRequired     = -32000
	codeResourceNotFound = -32002
)

// initResult is the part of the initialize answer the client uses.
type initResult struct {
	ProtocolVersion   int64 `json:"protocolVersion"`
	AgentCapabilities struct {
		LoadSession bool `json:"loadSession"`
	} `json:"agentCapabilities"`
	AuthMethods []authMethod `json:"authMethods"`
	AgentInfo   struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"agentInfo"`
}

type authMethod struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func decodeInit(raw json.RawMessage) (initResult, error) {
	var r initResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return initResult{}, fmt.Errorf("the initialize answer is not an InitializeResponse: %v", err)
	}
	return r, nil
}

// update is one session/update, reduced to what becomes events.
type update struct {
	sessionID string
	kind      string // the sessionUpdate discriminator
	text      string // *_chunk: the text of a text content block
	// tool_call, tool_call_update
	toolID    string
	title     string
	toolKind  string
	status    string
	hasStatus bool
	// plan
	plan []planEntry
}

type planEntry struct {
	Content string `json:"content"`
	Status  string `json:"status"`
}

// decodeUpdate decodes session/update params.
func decodeUpdate(params json.RawMessage) (update, error) {
	var p struct {
		SessionID string          `json:"sessionId"`
		Update    json.RawMessage `json:"update"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return update{}, err
	}
	var head struct {
		Kind string `json:"sessionUpdate"`
	}
	if err := json.Unmarshal(p.Update, &head); err != nil {
		return update{}, fmt.Errorf("update: %v", err)
	}
	if head.Kind == "" {
		return update{}, errors.New("an update without sessionUpdate")
	}
	u := update{sessionID: p.SessionID, kind: head.Kind}
	switch head.Kind {
	case "agent_message_chunk", "agent_thought_chunk", "user_message_chunk":
		var c struct {
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(p.Update, &c); err != nil {
			return update{}, err
		}
		u.text = blockText(c.Content)
	case "tool_call", "tool_call_update":
		var c struct {
			ToolCallID string  `json:"toolCallId"`
			Title      *string `json:"title"`
			Kind       *string `json:"kind"`
			Status     *string `json:"status"`
		}
		if err := json.Unmarshal(p.Update, &c); err != nil {
			return update{}, err
		}
		if c.ToolCallID == "" {
			return update{}, fmt.Errorf("%s without toolCallId", head.Kind)
		}
		u.toolID = c.ToolCallID
		if c.Title != nil {
			u.title = *c.Title
		}
		if c.Kind != nil {
			u.toolKind = *c.Kind
		}
		if c.Status != nil {
			u.status, u.hasStatus = *c.Status, true
		}
	case "plan":
		var c struct {
			Entries []planEntry `json:"entries"`
		}
		if err := json.Unmarshal(p.Update, &c); err != nil {
			return update{}, err
		}
		u.plan = c.Entries
	case "usage_update":
		// Checked, not used: no event carries the context window's fill.
		var c struct {
			Used int64 `json:"used"`
			Size int64 `json:"size"`
		}
		if err := json.Unmarshal(p.Update, &c); err != nil {
			return update{}, err
		}
	}
	return u, nil
}

// blockText is the text of a content block, or "" for any other block
// (images, audio, resources are not output a worker's transcript holds).
func blockText(raw json.RawMessage) string {
	var b struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &b) != nil || b.Type != "text" {
		return ""
	}
	return b.Text
}

// promptResult is the answer to session/prompt.
type promptResult struct {
	stopReason string
	usage      *sdk.Usage // nil when the agent reported none
}

// decodePromptResult decodes a PromptResponse: stopReason, and token usage
// from the unstable `usage` member or Gemini CLI's
// `_meta.quota.token_count`.
func decodePromptResult(raw json.RawMessage) (promptResult, error) {
	var r struct {
		StopReason string `json:"stopReason"`
		Usage      *struct {
			InputTokens       int64 `json:"inputTokens"`
			OutputTokens      int64 `json:"outputTokens"`
			TotalTokens       int64 `json:"totalTokens"`
			CachedReadTokens  int64 `json:"cachedReadTokens"`
			CachedWriteTokens int64 `json:"cachedWriteTokens"`
			ThoughtTokens     int64 `json:"thoughtTokens"`
		} `json:"usage"`
		Meta struct {
			Quota struct {
				TokenCount *struct {
					InputTokens  int64 `json:"input_tokens"`
					OutputTokens int64 `json:"output_tokens"`
				} `json:"token_count"`
			} `json:"quota"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return promptResult{}, fmt.Errorf("not a PromptResponse: %v", err)
	}
	if r.StopReason == "" {
		return promptResult{}, errors.New("a PromptResponse without stopReason")
	}
	res := promptResult{stopReason: r.StopReason}
	switch {
	case r.Usage != nil:
		u := &sdk.Usage{
			InputTokens:           r.Usage.InputTokens,
			CachedInputTokens:     r.Usage.CachedReadTokens,
			OutputTokens:          r.Usage.OutputTokens,
			ReasoningOutputTokens: r.Usage.ThoughtTokens,
			TotalTokens:           r.Usage.TotalTokens,
		}
		if u.TotalTokens == 0 {
			u.TotalTokens = u.InputTokens + u.OutputTokens
		}
		res.usage = u
	case r.Meta.Quota.TokenCount != nil:
		tc := r.Meta.Quota.TokenCount
		res.usage = &sdk.Usage{InputTokens: tc.InputTokens, OutputTokens: tc.OutputTokens, TotalTokens: tc.InputTokens + tc.OutputTokens}
	}
	return res, nil
}

// permissionRequest is session/request_permission's params.
type permissionRequest struct {
	SessionID string `json:"sessionId"`
	Options   []struct {
		OptionID string `json:"optionId"`
		Name     string `json:"name"`
		Kind     string `json:"kind"`
	} `json:"options"`
	ToolCall struct {
		ToolCallID string `json:"toolCallId"`
		Title      string `json:"title"`
		Kind       string `json:"kind"`
	} `json:"toolCall"`
}

func decodePermissionRequest(params json.RawMessage) (permissionRequest, error) {
	var p permissionRequest
	if err := json.Unmarshal(params, &p); err != nil {
		return permissionRequest{}, fmt.Errorf("not a RequestPermissionRequest: %v", err)
	}
	return p, nil
}

// toolKind maps ACP's tool kinds to the contract's ToolCall kinds (the
// Codex backend's words where they mean the same: command, file_change).
func toolKind(k string) string {
	switch k {
	case "execute":
		return "command"
	case "edit", "delete", "move":
		return "file_change"
	case "":
		return "other"
	}
	return k
}

// firstLine is the first non-empty line of s, trimmed.
func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
