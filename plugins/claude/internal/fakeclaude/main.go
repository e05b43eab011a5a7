// Command fakeclaude stands in for Claude Code in the Claude backend's
// fault tests: it speaks the stream-json lines of
// `claude -p --input-format stream-json --output-format stream-json` and
// misbehaves on demand, which the real claude cannot be made to do.
//
// It answers initialize, and runs each user line as a CLI turn (init, the
// line replayed with its uuid, assistant text, result "handled: <text>").
// Words in the text change that:
//
//   - SLEEP_MS=<n>: print "working", then wait n ms before the result; an
//     interrupt ends the wait (result error_during_execution). A user line
//     read meanwhile is folded into the turn when the text holds FOLD
//     (replayed at once, and the result says "folded: <its text>"), else
//     queued and run after as a CLI turn of its own.
//   - HANG: print "working", then nothing, ever; interrupts are not
//     answered (a wedged CLI).
//   - HANG_SOFT: print "working", then nothing until an interrupt, which
//     is answered.
//   - HANG_AFTER: answer normally; the next user line gets no output at
//     all (claude's hang after result).
//   - DIE: print "working", then exit 3.
//   - MALFORMED: print a line that is not JSON, then answer normally.
//   - FAIL: a result with is_error and errors ["fake failure"].
//   - TOOL: a Bash tool_use "echo hi" and its tool_result first.
//   - OTHER_REQ: send a control_request of a subtype tthost does not
//     serve and answer "answered: <the response's subtype>".
//   - REMEMBER (with FAKE_CLAUDE_STATE): the answer also lists the
//     session's earlier user texts, kept across processes, so a resume
//     can be proved.
//   - ASK: ask can_use_tool for Bash "touch x" and answer "approval: allow"
//     or "approval: deny" with what it was told.
//
// Environment: FAKE_CLAUDE_LOG appends every line received; FAKE_CLAUDE_STARTS
// appends "start <args>" per process; FAKE_CLAUDE_STATE, when set, is a
// directory of known session ids: --resume of an id not there fails as
// claude does ("No conversation found", exit 1).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	outMu sync.Mutex
	out   = bufio.NewWriter(os.Stdout)
	sid   string
	cost  float64
)

func emit(v map[string]any) {
	if _, ok := v["session_id"]; !ok {
		v["session_id"] = sid
	}
	b, _ := json.Marshal(v)
	outMu.Lock()
	defer outMu.Unlock()
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func raw(s string) {
	outMu.Lock()
	defer outMu.Unlock()
	out.WriteString(s + "\n")
	out.Flush()
}

type msg map[string]any

func (m msg) typ() string  { s, _ := m["type"].(string); return s }
func (m msg) uuid() string { s, _ := m["uuid"].(string); return s }

func (m msg) text() string {
	mm, _ := m["message"].(map[string]any)
	switch c := mm["content"].(type) {
	case string:
		return c
	case []any:
		var parts []string
		for _, b := range c {
			if bm, ok := b.(map[string]any); ok {
				if t, ok := bm["text"].(string); ok {
					parts = append(parts, t)
				}
			}
		}
		return strings.Join(parts, "\n")
	}
	return ""
}

func (m msg) control() (id, subtype string) {
	id, _ = m["request_id"].(string)
	if r, ok := m["request"].(map[string]any); ok {
		subtype, _ = r["subtype"].(string)
	}
	return id, subtype
}

func appendFile(env, line string) {
	if p := os.Getenv(env); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			f.WriteString(line + "\n")
			f.Close()
		}
	}
}

func flagValue(name string) string {
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func main() {
	appendFile("FAKE_CLAUDE_STARTS", "start "+strings.Join(os.Args[1:], " "))
	sid = flagValue("--session-id")
	state := os.Getenv("FAKE_CLAUDE_STATE")
	if id := flagValue("--resume"); id != "" {
		sid = id
		if state != "" {
			if _, err := os.Stat(filepath.Join(state, id)); err != nil {
				fmt.Fprintf(os.Stderr, "No conversation found with session ID: %s\n", id)
				emit(map[string]any{"type": "result", "subtype": "error_during_execution", "is_error": true,
					"errors": []string{"No conversation found with session ID: " + id}, "total_cost_usd": 0})
				os.Exit(1)
			}
		}
	}
	if state != "" && sid != "" {
		// Created when missing: a resumed session keeps its history.
		if f, err := os.OpenFile(filepath.Join(state, sid), os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
			f.Close()
		}
	}
	in := make(chan msg)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			appendFile("FAKE_CLAUDE_LOG", sc.Text())
			var m msg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				in <- m
			}
		}
		close(in)
	}()
	var queue []msg
	hangNext := false
	for {
		var m msg
		if len(queue) > 0 {
			m, queue = queue[0], queue[1:]
		} else {
			var ok bool
			if m, ok = <-in; !ok {
				return
			}
		}
		switch m.typ() {
		case "control_request":
			id, _ := m.control()
			emit(map[string]any{"type": "control_response", "response": map[string]any{"subtype": "success", "request_id": id, "response": map[string]any{}}})
		case "user":
			if hangNext {
				for range in {
				}
				return
			}
			var more []msg
			more, hangNext = runTurn(m, in)
			queue = append(queue, more...)
		}
	}
}

var sleepRe = regexp.MustCompile(`SLEEP_MS=(\d+)`)

// runTurn runs one CLI turn; it returns the user lines it queued, and
// whether the next line must hang.
func runTurn(m msg, in chan msg) (queued []msg, hangNext bool) {
	text := m.text()
	emit(map[string]any{"type": "system", "subtype": "init", "cwd": ".", "model": "fake"})
	emit(map[string]any{"type": "user", "isReplay": true, "uuid": m.uuid(), "message": map[string]any{"role": "user", "content": text}})
	say := func(s string) {
		emit(map[string]any{"type": "assistant", "message": map[string]any{"id": "msg_fake", "role": "assistant",
			"content": []any{map[string]any{"type": "text", "text": s}}}, "parent_tool_use_id": nil})
	}
	result := func(subtype string, isErr bool, text string, errs []string) {
		cost += 0.001
		r := map[string]any{"type": "result", "subtype": subtype, "is_error": isErr, "result": text, "total_cost_usd": cost,
			"usage": map[string]any{"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 5}}
		if errs != nil {
			r["errors"] = errs
		}
		emit(r)
	}
	interrupted := func(id string) {
		emit(map[string]any{"type": "control_response", "response": map[string]any{"subtype": "success", "request_id": id, "response": map[string]any{"still_queued": []any{}}}})
		result("error_during_execution", true, "", []string{"interrupted"})
	}
	var folded []string
	// wait waits d (forever when d < 0) while handling input; false: an
	// interrupt ended the turn.
	wait := func(d time.Duration, answerInterrupts bool) bool {
		var timeout <-chan time.Time
		if d >= 0 {
			timeout = time.After(d)
		}
		for {
			select {
			case <-timeout:
				return true
			case x, ok := <-in:
				if !ok {
					os.Exit(0)
				}
				switch x.typ() {
				case "control_request":
					id, sub := x.control()
					if !answerInterrupts {
						continue
					}
					if sub == "interrupt" {
						interrupted(id)
						return false
					}
					emit(map[string]any{"type": "control_response", "response": map[string]any{"subtype": "success", "request_id": id, "response": map[string]any{}}})
				case "user":
					if strings.Contains(text, "FOLD") {
						emit(map[string]any{"type": "user", "isReplay": true, "uuid": x.uuid(), "message": map[string]any{"role": "user", "content": x.text()}})
						folded = append(folded, x.text())
					} else {
						queued = append(queued, x)
					}
				}
			}
		}
	}
	switch {
	case strings.Contains(text, "MALFORMED"):
		raw("this is not json {")
	case strings.Contains(text, "HANG_SOFT"):
		say("working")
		wait(-1, true)
		return queued, false
	case strings.Contains(text, "HANG_AFTER"):
		hangNext = true
	case strings.Contains(text, "HANG"):
		say("working")
		wait(-1, false)
	case strings.Contains(text, "DIE"):
		say("working")
		os.Exit(3)
	case strings.Contains(text, "FAIL"):
		result("error_during_execution", true, "", []string{"fake failure"})
		return queued, false
	case strings.Contains(text, "TOOL"):
		emit(map[string]any{"type": "assistant", "message": map[string]any{"id": "msg_tool", "role": "assistant",
			"content": []any{map[string]any{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": map[string]any{"command": "echo hi"}}}}, "parent_tool_use_id": nil})
		emit(map[string]any{"type": "user", "message": map[string]any{"role": "user",
			"content": []any{map[string]any{"type": "tool_result", "tool_use_id": "toolu_1", "content": "hi"}}}, "parent_tool_use_id": nil})
	case strings.Contains(text, "OTHER_REQ"):
		emit(map[string]any{"type": "control_request", "request_id": "other_1", "request": map[string]any{"subtype": "mcp_message", "server_name": "x"}})
		for x := range in {
			if x.typ() != "control_response" {
				continue
			}
			resp, _ := x["response"].(map[string]any)
			sub, _ := resp["subtype"].(string)
			say("answered: " + sub)
			result("success", false, "answered: "+sub, nil)
			return queued, false
		}
		os.Exit(0)
	case strings.Contains(text, "ASK"):
		emit(map[string]any{"type": "control_request", "request_id": "ask_1", "request": map[string]any{"subtype": "can_use_tool",
			"tool_name": "Bash", "input": map[string]any{"command": "touch x"}, "tool_use_id": "toolu_ask"}})
		for x := range in {
			if x.typ() != "control_response" {
				continue
			}
			resp, _ := x["response"].(map[string]any)
			inner, _ := resp["response"].(map[string]any)
			behavior, _ := inner["behavior"].(string)
			say("approval: " + behavior)
			result("success", false, "approval: "+behavior, nil)
			return queued, false
		}
		os.Exit(0)
	}
	if mm := sleepRe.FindStringSubmatch(text); mm != nil {
		ms, _ := strconv.Atoi(mm[1])
		say("working")
		if !wait(time.Duration(ms)*time.Millisecond, true) {
			return queued, false
		}
	}
	answer := "handled: " + text
	for _, f := range folded {
		answer += "\nfolded: " + f
	}
	if state := os.Getenv("FAKE_CLAUDE_STATE"); state != "" && sid != "" {
		path := filepath.Join(state, sid)
		if strings.Contains(text, "REMEMBER") {
			earlier, _ := os.ReadFile(path)
			answer += "\nremembered: " + strings.ReplaceAll(strings.TrimSpace(string(earlier)), "\n", " | ")
		}
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			f.WriteString(strings.ReplaceAll(text, "\n", " ") + "\n")
			f.Close()
		}
	}
	say(answer)
	result("success", false, answer, nil)
	return queued, hangNext
}
