package main

import (
	"encoding/json"
	"testing"
)

func TestDecodeUpdate(t *testing.T) {
	t.Parallel()
	u, err := decodeUpdate(json.RawMessage(`{"sessionId":"s","update":{"sessionUpdate":"tool_call_update","toolCallId":"x","status":"completed","content":[{"type":"diff"}]}}`))
	if err != nil || u.kind != "tool_call_update" || u.toolID != "x" || !u.hasStatus || u.status != "completed" || u.title != "" {
		t.Fatalf("%+v, %v", u, err)
	}
	u, err = decodeUpdate(json.RawMessage(`{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"image","data":"..."}}}`))
	if err != nil || u.text != "" {
		t.Fatalf("an image chunk: %+v, %v", u, err)
	}
	for _, bad := range []string{`{}`, `{"update":{}}`, `{"update":{"sessionUpdate":"tool_call"}}`, `[]`, `{"update":{"sessionUpdate":"plan","entries":3}}`} {
		if _, err := decodeUpdate(json.RawMessage(bad)); err == nil {
			t.Errorf("decodeUpdate(%s) took it", bad)
		}
	}
}

func TestDecodePromptResult(t *testing.T) {
	t.Parallel()
	r, err := decodePromptResult(json.RawMessage(`{"stopReason":"end_turn","_meta":{"quota":{"token_count":{"input_tokens":642,"output_tokens":24}}}}`))
	if err != nil || r.stopReason != "end_turn" || r.usage == nil || r.usage.InputTokens != 642 || r.usage.TotalTokens != 666 {
		t.Fatalf("gemini's quota: %+v %v", r, err)
	}
	r, err = decodePromptResult(json.RawMessage(`{"stopReason":"end_turn","usage":{"inputTokens":5,"outputTokens":2,"cachedReadTokens":1,"thoughtTokens":3,"totalTokens":11}}`))
	if err != nil || r.usage == nil || r.usage.TotalTokens != 11 || r.usage.CachedInputTokens != 1 || r.usage.ReasoningOutputTokens != 3 {
		t.Fatalf("ACP usage: %+v %v", r, err)
	}
	if r, err := decodePromptResult(json.RawMessage(`{"stopReason":"cancelled"}`)); err != nil || r.usage != nil {
		t.Fatalf("no usage: %+v %v", r, err)
	}
	if _, err := decodePromptResult(json.RawMessage(`{}`)); err == nil {
		t.Fatal("a result without stopReason was taken")
	}
}

// FuzzDecodeUpdate: any params decode or fail, never panic; a decoded
// tool update always has its id.
func FuzzDecodeUpdate(f *testing.F) {
	for _, s := range []string{
		`{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hi"}}}`,
		`{"sessionId":"s","update":{"sessionUpdate":"tool_call","toolCallId":"a","title":"t","kind":"read","status":"in_progress"}}`,
		`{"sessionId":"s","update":{"sessionUpdate":"plan","entries":[{"content":"c","priority":"high","status":"pending"}]}}`,
		`{"sessionId":"s","update":{"sessionUpdate":"usage_update","used":1,"size":2}}`,
		`{"update":{"sessionUpdate":"tool_call_update","toolCallId":"a","status":null}}`, `{"update":null}`, `null`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUpdate(b)
		if err == nil && u.kind == "" {
			t.Fatalf("%q: an update without a kind", b)
		}
		if err == nil && (u.kind == "tool_call" || u.kind == "tool_call_update") && u.toolID == "" {
			t.Fatalf("%q: a tool update without an id", b)
		}
	})
}

// FuzzAgentAnswers: the other decoders of the agent's output never panic.
func FuzzAgentAnswers(f *testing.F) {
	for _, s := range []string{
		`{"stopReason":"end_turn","_meta":{"quota":{"token_count":{"input_tokens":1,"output_tokens":2}}}}`,
		`{"protocolVersion":1,"agentCapabilities":{"loadSession":true},"authMethods":[{"id":"a"}],"agentInfo":{"name":"n"}}`,
		`{"sessionId":"s","options":[{"optionId":"o","kind":"allow_once"}],"toolCall":{"toolCallId":"x"}}`,
		`{"usage":{"inputTokens":"x"}}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodePromptResult(b); err == nil && r.stopReason == "" {
			t.Fatalf("%q: a result without stopReason", b)
		}
		_, _ = decodeInit(b)
		if r, err := decodePermissionRequest(b); err == nil {
			_ = safeDecision(r)
		}
		_ = blockText(b)
	})
}
