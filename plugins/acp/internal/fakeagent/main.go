// Command fakeagent is a scriptable ACP agent (protocol version 1) for the
// ACP backend's tests: it does on demand what a real agent does only
// sometimes (asks for auth, replays a loaded session after answering,
// asks permission, sends fs and terminal requests, ignores a cancel, hangs,
// dies mid-turn, writes garbage). Real agents are proven against it in
// acptest; this covers the faults.
//
// Environment:
//
//	FAKE_ACP_LOG       every message received, one JSON line each
//	FAKE_ACP_STATE     a directory keeping sessions across processes (load)
//	FAKE_ACP_AUTH=1    session/new and session/load answer -32000 until
//	                   authenticate {methodId: "fake-key"}
//	FAKE_ACP_VERSION=N initialize answers protocolVersion N
//	FAKE_ACP_NO_LOAD=1 loadSession is not declared
//	FAKE_ACP_REPLAY_MS=N pause between replayed updates after session/load
//	                   (answered after the first one, as Gemini CLI does)
//
// Words in a prompt (any of them; the answer is "echo: <first line>"
// unless one says otherwise):
//
//	SLEEP_MS=N    say "working", then wait N ms or until cancelled
//	SLEEP_FIRST_MS=N the same, for the process's first prompt only
//	IGNORE_CANCEL while sleeping, a cancel is not answered
//	HANG          say nothing and never answer (cancel included)
//	SILENT_MS=N   say nothing for N ms, then answer (a cancel ends it)
//	PERMISSION    ask permission for a shell command first
//	TOOL          a tool call: pending, in_progress (twice), completed
//	PLAN THOUGHT USAGE_UPDATE  a plan, reasoning, a usage_update
//	FS            send fs/read_text_file and terminal/create first
//	GARBAGE       write a line that is not JSON first
//	DIE           say "dying" and exit 3
//	REFUSE MAXTOK FAIL  stopReason refusal, max_tokens; a JSON-RPC error
//	REMEMBER      answer with every earlier prompt of the session
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

type msg struct {
	JSONRPC string          `json:"jsonrpc,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

type agent struct {
	wmu     sync.Mutex
	mu      sync.Mutex
	authed  bool
	session string
	history []string
	prompts int
	cancel  chan struct{} // closed by session/cancel for the running prompt
	nextReq int
	waiting map[string]chan msg // our requests' answers
}

func main() {
	a := &agent{waiting: map[string]chan msg{}, cancel: make(chan struct{})}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 64<<20)
	for in.Scan() {
		line := append([]byte(nil), in.Bytes()...)
		logLine(line)
		var m msg
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		switch {
		case m.Method == "":
			a.mu.Lock()
			ch := a.waiting[string(m.ID)]
			delete(a.waiting, string(m.ID))
			a.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case m.Method == "session/cancel":
			a.mu.Lock()
			select {
			case <-a.cancel:
			default:
				close(a.cancel)
			}
			a.mu.Unlock()
		case m.Method == "session/prompt":
			a.mu.Lock()
			a.cancel = make(chan struct{})
			a.mu.Unlock()
			go a.prompt(m)
		default:
			a.handle(m)
		}
	}
}

func logLine(b []byte) {
	if p := os.Getenv("FAKE_ACP_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			_, _ = f.Write(append(b, '\n'))
			_ = f.Close()
		}
	}
}

func (a *agent) write(v any) {
	b, _ := json.Marshal(v)
	a.wmu.Lock()
	defer a.wmu.Unlock()
	_, _ = os.Stdout.Write(append(b, '\n'))
}

func (a *agent) reply(id json.RawMessage, result any) {
	a.write(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
}

func (a *agent) fail(id json.RawMessage, code int, message string) {
	a.write(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": message}})
}

func (a *agent) update(u map[string]any) {
	a.mu.Lock()
	id := a.session
	a.mu.Unlock()
	a.write(map[string]any{"jsonrpc": "2.0", "method": "session/update", "params": map[string]any{"sessionId": id, "update": u}})
}

func (a *agent) say(text string) {
	a.update(map[string]any{"sessionUpdate": "agent_message_chunk", "content": map[string]any{"type": "text", "text": text}})
}

// ask sends a request to the client and waits for its answer.
func (a *agent) ask(method string, params any) msg {
	a.mu.Lock()
	id := strconv.Itoa(a.nextReq) // numbered from 0, like Gemini CLI
	a.nextReq++
	ch := make(chan msg, 1)
	a.waiting[id] = ch
	a.mu.Unlock()
	a.write(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "method": method, "params": params})
	return <-ch
}

func (a *agent) handle(m msg) {
	switch m.Method {
	case "initialize":
		v := 1
		if n, err := strconv.Atoi(os.Getenv("FAKE_ACP_VERSION")); err == nil {
			v = n
		}
		a.reply(m.ID, map[string]any{
			"protocolVersion":   v,
			"agentCapabilities": map[string]any{"loadSession": os.Getenv("FAKE_ACP_NO_LOAD") == ""},
			"authMethods":       []any{map[string]any{"id": "fake-key", "name": "Fake key"}, map[string]any{"id": "oauth", "name": "OAuth"}},
			"agentInfo":         map[string]any{"name": "fakeagent", "version": "1.0.0"},
		})
	case "authenticate":
		var p struct {
			MethodID string `json:"methodId"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.MethodID != "fake-key" {
			a.fail(m.ID, -32000, "only fake-key works here")
			return
		}
		a.mu.Lock()
		a.authed = true
		a.mu.Unlock()
		a.reply(m.ID, map[string]any{})
	case "session/new":
		if !a.authOK(m) {
			return
		}
		id := fmt.Sprintf("fake-%d-%d", os.Getpid(), time.Now().UnixNano())
		a.mu.Lock()
		a.session = id
		a.mu.Unlock()
		saveHistory(id, []string{})
		a.reply(m.ID, map[string]any{"sessionId": id})
		a.update(map[string]any{"sessionUpdate": "available_commands_update", "availableCommands": []any{}})
	case "session/load":
		if !a.authOK(m) {
			return
		}
		var p struct {
			SessionID string `json:"sessionId"`
		}
		_ = json.Unmarshal(m.Params, &p)
		hist, ok := loadHistory(p.SessionID)
		if !ok {
			a.fail(m.ID, -32603, "Invalid session identifier "+p.SessionID)
			return
		}
		a.mu.Lock()
		a.session, a.history = p.SessionID, hist
		a.mu.Unlock()
		pause, _ := strconv.Atoi(os.Getenv("FAKE_ACP_REPLAY_MS"))
		for i, h := range hist {
			a.update(map[string]any{"sessionUpdate": "user_message_chunk", "content": map[string]any{"type": "text", "text": h}})
			if i == 0 {
				a.reply(m.ID, map[string]any{}) // answered early, as Gemini CLI does
			}
			time.Sleep(time.Duration(pause) * time.Millisecond)
			a.say("REPLAYED answer to " + h)
		}
		if len(hist) == 0 {
			a.reply(m.ID, map[string]any{})
		}
	default:
		if len(m.ID) > 0 {
			a.fail(m.ID, -32601, "fakeagent: no method "+m.Method)
		}
	}
}

func (a *agent) authOK(m msg) bool {
	a.mu.Lock()
	ok := a.authed || os.Getenv("FAKE_ACP_AUTH") == ""
	a.mu.Unlock()
	if !ok {
		a.fail(m.ID, -32000, "Authentication required.")
	}
	return ok
}

var number = regexp.MustCompile(`^\d+`)

func arg(text, key string) (int, bool) {
	i := strings.Index(text, key+"=")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(number.FindString(text[i+len(key)+1:]))
	return n, err == nil
}

func (a *agent) prompt(m msg) {
	var p struct {
		Prompt []struct {
			Text string `json:"text"`
		} `json:"prompt"`
	}
	_ = json.Unmarshal(m.Params, &p)
	var parts []string
	for _, b := range p.Prompt {
		parts = append(parts, b.Text)
	}
	text := strings.Join(parts, "")
	a.mu.Lock()
	a.prompts++
	first := a.prompts == 1
	cancel := a.cancel
	sid := a.session
	earlier := append([]string(nil), a.history...)
	a.history = append(a.history, text)
	saveHistory(a.session, a.history)
	a.mu.Unlock()
	has := func(w string) bool { return strings.Contains(text, w) }
	end := func(reason string) {
		a.reply(m.ID, map[string]any{"stopReason": reason,
			"_meta": map[string]any{"quota": map[string]any{"token_count": map[string]any{"input_tokens": 10, "output_tokens": 5}}}})
	}
	cancelled := func() bool {
		select {
		case <-cancel:
			return true
		default:
			return false
		}
	}

	if has("GARBAGE") {
		a.wmu.Lock()
		_, _ = os.Stdout.WriteString("this is not json\n")
		a.wmu.Unlock()
	}
	if has("HANG") {
		select {}
	}
	if n, ok := arg(text, "SILENT_MS"); ok {
		select {
		case <-time.After(time.Duration(n) * time.Millisecond):
		case <-cancel:
			end("cancelled")
			return
		}
	}
	if has("FS") {
		r1 := a.ask("fs/read_text_file", map[string]any{"sessionId": sid, "path": "/etc/hostname"})
		r2 := a.ask("terminal/create", map[string]any{"sessionId": sid, "command": "ls"})
		a.say(fmt.Sprintf("fs answered %s; terminal answered %s\n", r1.Error, r2.Error))
	}
	if has("THOUGHT") {
		a.update(map[string]any{"sessionUpdate": "agent_thought_chunk", "content": map[string]any{"type": "text", "text": "pondering deeply"}})
	}
	if has("PLAN") {
		a.update(map[string]any{"sessionUpdate": "plan", "entries": []any{
			map[string]any{"content": "look around", "priority": "high", "status": "completed"},
			map[string]any{"content": "answer", "priority": "medium", "status": "in_progress"}}})
	}
	if has("USAGE_UPDATE") {
		a.update(map[string]any{"sessionUpdate": "usage_update", "used": 1234, "size": 100000})
	}
	if has("PERMISSION") {
		tc := map[string]any{"toolCallId": "shell-1", "status": "pending", "title": "touch made_by_fake.txt", "kind": "execute"}
		r := a.ask("session/request_permission", map[string]any{"sessionId": sid, "toolCall": tc, "options": []any{
			map[string]any{"optionId": "proceed_always", "name": "Allow for this session", "kind": "allow_always"},
			map[string]any{"optionId": "proceed_once", "name": "Allow", "kind": "allow_once"},
			map[string]any{"optionId": "cancel", "name": "Reject", "kind": "reject_once"}}})
		var res struct {
			Outcome struct {
				Outcome  string `json:"outcome"`
				OptionID string `json:"optionId"`
			} `json:"outcome"`
		}
		_ = json.Unmarshal(r.Result, &res)
		switch {
		case res.Outcome.Outcome == "cancelled":
			end("cancelled")
			return
		case strings.HasPrefix(res.Outcome.OptionID, "proceed"):
			a.update(map[string]any{"sessionUpdate": "tool_call", "toolCallId": "shell-1", "status": "in_progress", "title": "touch made_by_fake.txt", "kind": "execute"})
			a.update(map[string]any{"sessionUpdate": "tool_call_update", "toolCallId": "shell-1", "status": "completed"})
			a.say("permission " + res.Outcome.OptionID + "\n")
		default:
			a.say("permission rejected\n")
		}
	}
	if has("TOOL") {
		a.update(map[string]any{"sessionUpdate": "tool_call", "toolCallId": "read-1", "title": "notes.txt", "kind": "read"})
		a.update(map[string]any{"sessionUpdate": "tool_call_update", "toolCallId": "read-1", "status": "in_progress"})
		a.update(map[string]any{"sessionUpdate": "tool_call_update", "toolCallId": "read-1", "status": "in_progress", "content": []any{}})
		a.update(map[string]any{"sessionUpdate": "tool_call_update", "toolCallId": "read-1", "status": "completed"})
	}
	if has("DIE") {
		a.say("dying\n")
		time.Sleep(50 * time.Millisecond)
		os.Exit(3)
	}
	n, sleep := arg(text, "SLEEP_MS")
	if f, ok := arg(text, "SLEEP_FIRST_MS"); ok && first {
		n, sleep = f, true
	}
	if sleep {
		a.say("working\n")
		timer := time.After(time.Duration(n) * time.Millisecond)
		if has("IGNORE_CANCEL") {
			<-timer
		} else {
			select {
			case <-timer:
			case <-cancel:
				end("cancelled")
				return
			}
		}
	}
	if cancelled() && !has("IGNORE_CANCEL") {
		end("cancelled")
		return
	}
	switch {
	case has("FAIL"):
		a.fail(m.ID, -32603, "the fake agent failed as asked")
		return
	case has("REMEMBER"):
		a.say("I remember: " + strings.Join(earlier, " | "))
	default:
		first, _, _ := strings.Cut(text, "\n")
		a.say("echo: " + first)
	}
	switch {
	case has("REFUSE"):
		end("refusal")
	case has("MAXTOK"):
		end("max_tokens")
	default:
		end("end_turn")
	}
}

func statePath(id string) string {
	dir := os.Getenv("FAKE_ACP_STATE")
	if dir == "" || id == "" || strings.ContainsAny(id, "/\\") {
		return ""
	}
	return filepath.Join(dir, id+".json")
}

func loadHistory(id string) ([]string, bool) {
	p := statePath(id)
	if p == "" {
		return nil, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	var h []string
	return h, json.Unmarshal(b, &h) == nil
}

func saveHistory(id string, h []string) {
	if p := statePath(id); p != "" {
		b, _ := json.Marshal(h)
		_ = os.WriteFile(p, b, 0o600)
	}
}
