// Command fakeappserver is a scriptable stand-in for `codex app-server
// --listen stdio://`, for tests that need codex's protocol without codex:
// fast, deterministic turns and fault injection. The real codex (against a
// mock model server) is what proves the backend works; this fake is for
// what the real one will not do on demand. Other packages' tests use it, so
// what is written here is its contract.
//
// Wire: JSON lines on stdin and stdout, no "jsonrpc" member, like codex.
// Output lines are written whole under one lock. It exits 0 when stdin
// ends. It prints "fake-codex app-server started" on stderr at start.
//
// Environment:
//
//	FAKE_CODEX_LOG     append one JSON line per message received: requests
//	                   and notifications as {"method":…,"params":…}; answers
//	                   to its own server requests as received ({"id":…,
//	                   "result":…} or {"id":…,"error":…}).
//	FAKE_CODEX_STARTS  append "start\n" at every process start.
//	FAKE_CODEX_IGNORE  comma-separated methods it never answers nor acts on
//	                   (they are still logged): deadlines can be tested.
//	FAKE_CODEX_STATE   a directory where threads outlive the process, as
//	                   codex's rollouts do: thread/start claims the first
//	                   free fake-thread-<n> there (so processes sharing it
//	                   never hand out one id twice), every text a thread is
//	                   told is kept in its file, and thread/resume of a
//	                   thread without a file fails as for an unknown id.
//	                   Unset: threads live in memory, and any id starting
//	                   with fake-thread- resumes.
//
// Methods (errors are {code:-32600, message}, as codex sends them):
//
//	initialize     {userAgent:"fake-codex", codexHome:$CODEX_HOME,
//	               platformFamily:"unix", platformOs:"linux"}. Any other
//	               request before it fails with "Not initialized"; a second
//	               one with "Already initialized". initialized is ignored.
//	thread/start   refuses a non-string sandbox; answers {thread:{id:
//	               "fake-thread-<n>"}, model: params.model}, then sends
//	               thread/started.
//	thread/resume  echoes a threadId that starts with "fake-thread-" (with
//	               FAKE_CODEX_STATE: one that has a file there, whose texts
//	               it loads); any other fails with "no rollout found for
//	               thread id <id>".
//	turn/start     checks the thread is known, input[0] is {type:"text",
//	               text, text_elements:[…]}, and sandboxPolicy (if sent) is
//	               an object with a string "type" (a bare string is refused,
//	               as codex would: docs/compatibility.md#d3). Answers {turn:{id:
//	               "turn-<n>", status:"inProgress"}} and sends turn/started,
//	               then works on the turn (below). On a thread with an
//	               active turn it acts as codex does: the text joins the
//	               active turn and its id is answered.
//	turn/steer     "no active turn to steer", or "expected active turn id
//	               `X` but found `Y`"; else the text joins the active turn
//	               (a SLEEP_MS wait goes on) and {turnId} is answered.
//	turn/interrupt ends the active turn: {} and turn/completed with status
//	               interrupted; "no active turn to interrupt" without one.
//	other          "unknown method <m>".
//
// A turn's work is driven by words in its text (and steered texts), in
// this order:
//
//	ECHO=1           first a delta "echo: <the text's first line>\n"; text
//	                 steered into the turn later gets the same at once.
//	SLEEP_MS=<n>     wait n ms, in small steps; an interrupt ends the turn.
//	GARBAGE=1        the line `this is not json`.
//	TOOL_CALL=1      item/started and item/completed commandExecution
//	                 {command:"echo hi", status:"completed", exitCode:0}.
//	APPROVAL=1       server request item/commandExecution/requestApproval
//	                 {threadId, turnId, itemId, command:"touch x"}; waits for
//	                 the answer; item/completed commandExecution with status
//	                 completed for accept/acceptForSession, declined for
//	                 anything else; cancel also ends the turn interrupted.
//	FILE_APPROVAL=1  the same for a fileChange of x.txt, through
//	                 item/fileChange/requestApproval.
//	PERMISSIONS=1    server request item/permissions/requestApproval for
//	                 network access; waits for the answer.
//	ODD_REQUEST=1    server request item/tool/requestUserInput (one that a
//	                 client may not support); waits for the answer.
//	ERROR=1          an error notification {error:{message:"upstream
//	                 trouble"}, willRetry:false, threadId, turnId}.
//	DELTAS=<n>       n item/agentMessage/delta notifications of "x", as fast
//	                 as it can write them.
//	CRASH=1          prints a line on stderr and exits with status 3.
//	FAIL=1           turn/completed with status failed, error {message:"boom"}.
//	(then)           delta "handled urgent turn" if the text contains URGENT,
//	                 "I remember: <the thread's earlier texts, joined by
//	                 " | ">" if it contains REMEMBER=1, else "handled
//	                 turn"; item/completed agentMessage with
//	                 that text; thread/tokenUsage/updated (total and last:
//	                 10 input, 0 cached, 5 output, 0 reasoning, 15 total;
//	                 modelContextWindow 1000); turn/completed completed.
//	LATE_COMPLETE=1  the turn stops being active before that final delta,
//	                 and its turn/completed is held back until the answer
//	                 to the next request has been written: a steer is
//	                 refused with "no active turn to steer" while the turn's
//	                 completion is still on its way, deterministically.
//	REJECT=1         turn/start itself fails ("rejected by the fake").
//	LATE_START=1     as codex does, the turn is answered before it is
//	                 active: it becomes active (turn/started, then its
//	                 work) only once the answer to the next request has been
//	                 written, so a steer or interrupt sent right after
//	                 turn/start gets "no active turn", deterministically.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

func main() {
	if path := os.Getenv("FAKE_CODEX_STARTS"); path != "" {
		appendFile(path, []byte("start\n"))
	}
	fmt.Fprintln(os.Stderr, "fake-codex app-server started")
	s := &server{
		out:      os.Stdout,
		logPath:  os.Getenv("FAKE_CODEX_LOG"),
		stateDir: os.Getenv("FAKE_CODEX_STATE"),
		ignore:   map[string]bool{},
		threads:  map[string]bool{},
		history:  map[string][]string{},
		waiting:  map[string]chan json.RawMessage{},
	}
	for _, m := range strings.Split(os.Getenv("FAKE_CODEX_IGNORE"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			s.ignore[m] = true
		}
	}
	r := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			s.handle(bytes.TrimSpace(line))
		}
		if err != nil {
			break
		}
	}
	os.Exit(0)
}

// server is the fake's state. Lock order: mu before outMu.
type server struct {
	outMu sync.Mutex
	out   io.Writer

	logPath  string
	stateDir string // FAKE_CODEX_STATE, "" for none
	ignore   map[string]bool

	mu          sync.Mutex
	initialized bool
	threads     map[string]bool
	history     map[string][]string // thread id -> every text it was told
	nThreads    int
	nTurns      int
	nRequests   int
	active      *fakeTurn
	held        []*fakeTurn                     // LATE_COMPLETE turns whose turn/completed waits for the next answer
	pending     *fakeTurn                       // a LATE_START turn, answered but not yet active
	waiting     map[string]chan json.RawMessage // server request id -> its answer
}

type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

type rpcErr struct {
	msg string
}

func fail(format string, args ...any) *rpcErr { return &rpcErr{fmt.Sprintf(format, args...)} }

func (s *server) handle(line []byte) {
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		fmt.Fprintf(os.Stderr, "fake-codex: unreadable line: %v\n", err)
		return
	}
	if m.Method == "" && m.ID != nil {
		// The answer to one of our server requests.
		s.log(line)
		s.mu.Lock()
		ch := s.waiting[string(m.ID)]
		delete(s.waiting, string(m.ID))
		s.mu.Unlock()
		if ch != nil {
			ch <- line
		}
		return
	}
	entry, _ := json.Marshal(struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params,omitempty"`
	}{m.Method, m.Params})
	s.log(entry)
	if s.ignore[m.Method] || m.ID == nil {
		return // notifications (initialized) need nothing
	}
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	after, result, err := s.dispatch(m.Method, m.Params)
	if err != nil {
		s.write(map[string]any{"id": m.ID, "error": map[string]any{"code": -32600, "message": err.msg}})
	} else {
		s.write(map[string]any{"id": m.ID, "result": result})
	}
	if after != nil {
		after()
	}
	if pending != nil {
		s.mu.Lock()
		s.pending = nil
		s.active = pending
		s.mu.Unlock()
		s.write(map[string]any{"method": "turn/started", "params": map[string]any{"threadId": pending.threadID, "turn": turnObject(pending.id, "inProgress")}})
		go s.work(pending)
	}
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, t := range held {
		<-t.finalOut
		s.end(t, "completed", nil)
	}
}

// dispatch answers a request; after, when set, runs once the answer is out.
func (s *server) dispatch(method string, raw json.RawMessage) (after func(), result any, err *rpcErr) {
	var p map[string]any
	_ = json.Unmarshal(raw, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if method == "initialize" {
		if s.initialized {
			return nil, nil, fail("Already initialized")
		}
		s.initialized = true
		return nil, map[string]any{"userAgent": "fake-codex", "codexHome": os.Getenv("CODEX_HOME"), "platformFamily": "unix", "platformOs": "linux"}, nil
	}
	if !s.initialized {
		return nil, nil, fail("Not initialized")
	}
	switch method {
	case "thread/start":
		if sb, ok := p["sandbox"]; ok && sb != nil {
			if _, isString := sb.(string); !isString {
				return nil, nil, fail("Invalid request: sandbox: expected a string such as \"danger-full-access\"")
			}
		}
		id, err := s.newThread()
		if err != nil {
			return nil, nil, err
		}
		s.threads[id] = true
		thread := map[string]any{"id": id}
		return func() {
			s.write(map[string]any{"method": "thread/started", "params": map[string]any{"thread": thread}})
		}, map[string]any{"thread": thread, "model": p["model"]}, nil
	case "thread/resume":
		id, _ := p["threadId"].(string)
		if !strings.HasPrefix(id, "fake-thread-") || !s.loadThread(id) {
			return nil, nil, fail("no rollout found for thread id %s", id)
		}
		s.threads[id] = true
		return nil, map[string]any{"thread": map[string]any{"id": id}, "model": p["model"]}, nil
	case "turn/start":
		return s.startTurn(p)
	case "turn/steer":
		t := s.active
		want, _ := p["expectedTurnId"].(string)
		switch {
		case t == nil:
			return nil, nil, fail("no active turn to steer")
		case want != t.id:
			return nil, nil, fail("expected active turn id `%s` but found `%s`", want, t.id)
		}
		text, ierr := inputText(p)
		if ierr != nil {
			return nil, nil, ierr
		}
		t.add(text)
		s.tell(t.threadID, text)
		return func() { s.echo(t, text) }, map[string]any{"turnId": t.id}, nil
	case "turn/interrupt":
		t := s.active
		if t == nil {
			return nil, nil, fail("no active turn to interrupt")
		}
		s.active = nil
		close(t.interrupted)
		return func() { s.end(t, "interrupted", nil) }, map[string]any{}, nil
	}
	return nil, nil, fail("unknown method %s", method)
}

// startTurn validates turn/start like codex and starts the turn's work.
// Called with s.mu held.
func (s *server) startTurn(p map[string]any) (func(), any, *rpcErr) {
	threadID, _ := p["threadId"].(string)
	if !s.threads[threadID] {
		return nil, nil, fail("thread not found: %s", threadID)
	}
	text, err := inputText(p)
	if err != nil {
		return nil, nil, err
	}
	if sp, ok := p["sandboxPolicy"]; ok && sp != nil {
		obj, isObject := sp.(map[string]any)
		if _, hasType := obj["type"].(string); !isObject || !hasType {
			return nil, nil, fail("Invalid request: sandboxPolicy: expected an object with a string \"type\", got %v", sp)
		}
	}
	if strings.Contains(text, "REJECT=1") {
		return nil, nil, fail("rejected by the fake: REJECT=1")
	}
	if t := s.active; t != nil {
		t.add(text) // codex steers a busy thread's turn/start
		s.tell(t.threadID, text)
		return func() { s.echo(t, text) }, map[string]any{"turn": turnObject(t.id, "inProgress")}, nil
	}
	s.nTurns++
	t := &fakeTurn{id: fmt.Sprintf("turn-%d", s.nTurns), threadID: threadID, interrupted: make(chan struct{}),
		earlier: slices.Clone(s.history[threadID])}
	t.add(text)
	s.tell(threadID, text)
	if strings.Contains(text, "LATE_START=1") {
		s.pending = t
		return nil, map[string]any{"turn": turnObject(t.id, "inProgress")}, nil
	}
	s.active = t
	return func() {
		s.write(map[string]any{"method": "turn/started", "params": map[string]any{"threadId": threadID, "turn": turnObject(t.id, "inProgress")}})
		go s.work(t)
	}, map[string]any{"turn": turnObject(t.id, "inProgress")}, nil
}

// inputText checks codex's UserInput list and returns the first text.
func inputText(p map[string]any) (string, *rpcErr) {
	input, _ := p["input"].([]any)
	if len(input) == 0 {
		return "", fail("Invalid request: input: expected a non-empty list")
	}
	first, _ := input[0].(map[string]any)
	text, isText := first["text"].(string)
	_, hasElements := first["text_elements"].([]any)
	if first["type"] != "text" || !isText || !hasElements {
		return "", fail("Invalid request: input[0]: expected {type:\"text\", text, text_elements:[]}, got %v", input[0])
	}
	return text, nil
}

func turnObject(id, status string) map[string]any {
	return map[string]any{"id": id, "status": status, "items": []any{}, "error": nil}
}

// write sends one line.
func (s *server) write(v any) {
	b, _ := json.Marshal(v)
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.out.Write(append(b, '\n'))
}

func (s *server) log(line []byte) {
	if s.logPath != "" {
		appendFile(s.logPath, append(bytes.Clone(line), '\n'))
	}
}

// appendFile appends b in one write, so lines from concurrent writers (and
// processes) do not interleave.
func appendFile(path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake-codex: %v\n", err)
		return
	}
	_, _ = f.Write(b)
	_ = f.Close()
}

// newThread names a new thread: fake-thread-<n>, n counting up in this
// process, or with FAKE_CODEX_STATE the first n whose file it can create
// there. Called with s.mu held.
func (s *server) newThread() (string, *rpcErr) {
	for {
		s.nThreads++
		id := fmt.Sprintf("fake-thread-%d", s.nThreads)
		if s.stateDir == "" {
			return id, nil
		}
		f, err := os.OpenFile(filepath.Join(s.stateDir, id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if os.IsExist(err) {
			continue
		}
		if err != nil {
			return "", fail("thread state: %v", err)
		}
		_ = f.Close()
		return id, nil
	}
}

// loadThread makes a thread known for thread/resume: with
// FAKE_CODEX_STATE only when it has a file, whose texts it loads. Called
// with s.mu held.
func (s *server) loadThread(id string) bool {
	if s.stateDir == "" {
		return true
	}
	b, err := os.ReadFile(filepath.Join(s.stateDir, filepath.Base(id)))
	if err != nil {
		return false
	}
	var texts []string
	_ = json.Unmarshal(b, &texts)
	s.history[id] = texts
	return true
}

// tell keeps a text the thread was told, in its file too with
// FAKE_CODEX_STATE. Called with s.mu held.
func (s *server) tell(threadID, text string) {
	s.history[threadID] = append(s.history[threadID], text)
	if s.stateDir != "" {
		b, _ := json.Marshal(s.history[threadID])
		if err := os.WriteFile(filepath.Join(s.stateDir, filepath.Base(threadID)), b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "fake-codex: thread state: %v\n", err)
		}
	}
}
