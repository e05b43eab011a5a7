package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeTurn is a turn the fake works on.
type fakeTurn struct {
	id, threadID string
	interrupted  chan struct{} // closed by turn/interrupt
	finalOut     chan struct{} // LATE_COMPLETE: closed when the turn's last lines are out
	earlier      []string      // what the thread was told before this turn (REMEMBER=1)

	mu    sync.Mutex
	text  strings.Builder // the turn's text and every steered text
	ended bool            // turn/completed was written: nothing more of this turn
}

func (t *fakeTurn) add(text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.text.WriteString(text)
	t.text.WriteString("\n")
}

// has reports whether word is in the turn's text, starting a word there
// (so APPROVAL=1 is not found in FILE_APPROVAL=1).
func (t *fakeTurn) has(word string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(word)).MatchString(t.text.String())
}

// number returns the n of NAME=<n> in the turn's text, or 0.
func (t *fakeTurn) number(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := regexp.MustCompile(`\b` + name + `=(\d+)`).FindStringSubmatch(t.text.String())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// emit writes a line of the turn unless the turn has ended; false means it
// has, and the work must stop.
func (s *server) emit(t *fakeTurn, v any) bool {
	b, _ := json.Marshal(v)
	return s.emitRaw(t, append(b, '\n'))
}

func (s *server) emitRaw(t *fakeTurn, b []byte) bool { return s.write1(t, b, false) }

// write1 writes b unless the turn has ended; last ends the turn in the
// same step, so no line of the turn can follow its turn/completed.
func (s *server) write1(t *fakeTurn, b []byte, last bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	t.ended = last
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.out.Write(b)
	return true
}

func (s *server) notify(t *fakeTurn, method string, params map[string]any) bool {
	params["threadId"], params["turnId"] = t.threadID, t.id
	return s.emit(t, map[string]any{"method": method, "params": params})
}

// end writes the turn's turn/completed, once.
func (s *server) end(t *fakeTurn, status string, turnErr any) {
	s.mu.Lock()
	if s.active == t {
		s.active = nil
	}
	s.mu.Unlock()
	turn := turnObject(t.id, status)
	turn["error"] = turnErr
	b, _ := json.Marshal(map[string]any{"method": "turn/completed", "params": map[string]any{"threadId": t.threadID, "turn": turn}})
	s.write1(t, append(b, '\n'), true)
}

// echo answers a text the turn was given with "echo: <its first line>"
// when the turn asked for it (ECHO=1).
func (s *server) echo(t *fakeTurn, text string) {
	if !t.has("ECHO=1") {
		return
	}
	first, _, _ := strings.Cut(text, "\n")
	s.notify(t, "item/agentMessage/delta", map[string]any{"itemId": "echo-" + t.id, "delta": "echo: " + first + "\n"})
}

// work does what the turn's text asks, in the documented order.
func (s *server) work(t *fakeTurn) {
	t.mu.Lock()
	given := t.text.String()
	t.mu.Unlock()
	s.echo(t, given)
	if ms := t.number("SLEEP_MS"); ms > 0 {
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		tick := time.NewTicker(10 * time.Millisecond)
		for time.Now().Before(deadline) {
			select {
			case <-t.interrupted:
				tick.Stop()
				return
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	if t.has("GARBAGE=1") && !s.emitRaw(t, []byte("this is not json\n")) {
		return
	}
	if t.has("TOOL_CALL=1") {
		cmd := map[string]any{"type": "commandExecution", "id": "call-" + t.id, "command": "echo hi", "status": "inProgress"}
		done := map[string]any{"type": "commandExecution", "id": "call-" + t.id, "command": "echo hi", "status": "completed", "exitCode": 0, "aggregatedOutput": "hi\n"}
		if !s.notify(t, "item/started", map[string]any{"item": cmd}) || !s.notify(t, "item/completed", map[string]any{"item": done}) {
			return
		}
	}
	if t.has("APPROVAL=1") && !s.approve(t, "commandExecution", "item/commandExecution/requestApproval",
		map[string]any{"command": "touch x"}) {
		return
	}
	if t.has("FILE_APPROVAL=1") && !s.approve(t, "fileChange", "item/fileChange/requestApproval",
		map[string]any{"changes": []any{map[string]any{"path": "x.txt", "kind": map[string]any{"type": "add"}, "diff": "+hello\n"}}}) {
		return
	}
	if t.has("PERMISSIONS=1") {
		if _, ok := s.ask(t, "item/permissions/requestApproval", map[string]any{
			"itemId": "perm-" + t.id, "cwd": "/", "reason": "needs the network",
			"permissions": map[string]any{"network": map[string]any{"enabled": true}, "fileSystem": nil},
		}); !ok {
			return
		}
	}
	if t.has("ODD_REQUEST=1") {
		if _, ok := s.ask(t, "item/tool/requestUserInput", map[string]any{
			"itemId": "ask-" + t.id, "questions": []any{map[string]any{"id": "q1", "header": "Q", "question": "Which one?", "isOther": false, "isSecret": false, "options": nil}},
		}); !ok {
			return
		}
	}
	if t.has("ERROR=1") && !s.notify(t, "error", map[string]any{"error": map[string]any{"message": "upstream trouble"}, "willRetry": false}) {
		return
	}
	if n := t.number("DELTAS"); n > 0 && !s.deltas(t, n) {
		return
	}
	if t.has("CRASH=1") {
		fmt.Fprintln(os.Stderr, "fake-codex: crashing on purpose (CRASH=1)")
		os.Exit(3)
	}
	if t.has("FAIL=1") {
		s.end(t, "failed", map[string]any{"message": "boom", "codexErrorInfo": "other"})
		return
	}
	if t.has("LATE_COMPLETE=1") {
		// No longer active, and held back from now on: the answer to the
		// next request releases turn/completed once the lines below are out.
		s.mu.Lock()
		if s.active == t {
			s.active = nil
		}
		t.finalOut = make(chan struct{})
		s.held = append(s.held, t)
		s.mu.Unlock()
		defer close(t.finalOut)
	}
	text := "handled turn"
	switch {
	case t.has("URGENT"):
		text = "handled urgent turn"
	case t.has("REMEMBER=1"):
		text = "I remember: " + strings.Join(t.earlier, " | ")
	}
	usage := map[string]any{"totalTokens": 15, "inputTokens": 10, "cachedInputTokens": 0, "outputTokens": 5, "reasoningOutputTokens": 0}
	if !s.notify(t, "item/agentMessage/delta", map[string]any{"itemId": "msg-" + t.id, "delta": text}) ||
		!s.notify(t, "item/completed", map[string]any{"item": map[string]any{"type": "agentMessage", "id": "msg-" + t.id, "text": text, "phase": "final_answer"}}) ||
		!s.notify(t, "thread/tokenUsage/updated", map[string]any{"tokenUsage": map[string]any{"total": usage, "last": usage, "modelContextWindow": 1000}}) {
		return
	}
	if t.finalOut == nil {
		s.end(t, "completed", nil)
	}
}

// approve runs an item that needs approval: item/started, the request,
// then item/completed as the decision says. False: the turn has ended.
func (s *server) approve(t *fakeTurn, itemType, method string, fields map[string]any) bool {
	itemID := fmt.Sprintf("%s-%s", itemType, t.id)
	it := map[string]any{"type": itemType, "id": itemID, "status": "inProgress"}
	for k, v := range fields {
		it[k] = v
	}
	if !s.notify(t, "item/started", map[string]any{"item": it}) {
		return false
	}
	params := map[string]any{"itemId": itemID}
	if c, ok := fields["command"]; ok {
		params["command"] = c
	}
	answer, ok := s.ask(t, method, params)
	if !ok {
		return false
	}
	var resp struct {
		Result struct {
			Decision string `json:"decision"`
		} `json:"result"`
	}
	_ = json.Unmarshal(answer, &resp)
	done := map[string]any{}
	for k, v := range it {
		done[k] = v
	}
	switch resp.Result.Decision {
	case "accept", "acceptForSession":
		done["status"] = "completed"
		if itemType == "commandExecution" {
			done["exitCode"] = 0
		}
	default:
		done["status"] = "declined"
		if itemType == "commandExecution" {
			done["exitCode"] = nil
		}
	}
	if !s.notify(t, "item/completed", map[string]any{"item": done}) {
		return false
	}
	if resp.Result.Decision == "cancel" {
		s.end(t, "interrupted", nil)
		return false
	}
	return true
}

// ask sends a server request for the turn and waits for its answer (the
// whole answer line). False: the turn was interrupted meanwhile.
func (s *server) ask(t *fakeTurn, method string, params map[string]any) (json.RawMessage, bool) {
	s.mu.Lock()
	id := strconv.Itoa(s.nRequests) // codex numbers its requests from 0
	s.nRequests++
	ch := make(chan json.RawMessage, 1)
	s.waiting[id] = ch
	s.mu.Unlock()
	params["threadId"], params["turnId"] = t.threadID, t.id
	if !s.emit(t, map[string]any{"id": json.RawMessage(id), "method": method, "params": params}) {
		return nil, false
	}
	select {
	case answer := <-ch:
		return answer, true
	case <-t.interrupted:
		return nil, false
	}
}

// deltas streams n one-character deltas, many lines per write.
func (s *server) deltas(t *fakeTurn, n int) bool {
	line, _ := json.Marshal(map[string]any{"method": "item/agentMessage/delta",
		"params": map[string]any{"threadId": t.threadID, "turnId": t.id, "itemId": "msg-deltas-" + t.id, "delta": "x"}})
	line = append(line, '\n')
	const perWrite = 512
	for n > 0 {
		k := min(n, perWrite)
		if !s.emitRaw(t, bytes.Repeat(line, k)) {
			return false
		}
		n -= k
	}
	return true
}
