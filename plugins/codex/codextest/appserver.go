package codextest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/sdktest"
)

// AppServerConfig says how to start `codex app-server`.
type AppServerConfig struct {
	// Home is the CODEX_HOME (from NewCodexHome). Required.
	Home string
	// Env is added to os.Environ() and Env(Home), e.g. a process tracker's
	// marker (sdktest.Processes.Env()).
	Env []string
	// Dir is the working directory; "" means a fresh t.TempDir().
	Dir string
	// Args are added after `app-server --listen stdio://`.
	Args []string
}

// AppServer is a raw JSON-RPC client of one `codex app-server --listen
// stdio://` process: enough to drive threads and turns in tests. Each
// message is a line of JSON without the "jsonrpc" field.
type AppServer struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	tag    string // tagEnv=<random>, in the environment of codex and all it starts
	// Started is when the process was started.
	Started time.Time

	writeMu sync.Mutex
	exited  chan struct{} // the process exited (not yet reaped)
	readEOF chan struct{} // stdout reached EOF

	mu       sync.Mutex
	nextID   int
	pending  map[int]chan Message
	messages []Message // notifications and server requests, in order
	problems []string
	changed  chan struct{} // closed and replaced when messages grows
}

// Message is one JSON-RPC message from the server.
type Message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RPCError       `json:"error,omitempty"`
	// At is when the client read the message.
	At time.Time `json:"-"`
}

// IsRequest reports whether m is a request from the server, which the
// client must answer.
func (m Message) IsRequest() bool { return m.Method != "" && len(m.ID) > 0 }

// RPCError is a JSON-RPC error.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("app-server error %d: %s", e.Code, e.Message) }

// tagEnv tags an app-server started by StartAppServer and, through
// inheritance, every process it starts.
const tagEnv = "CODEXTEST_APPSERVER"

// StartAppServer starts `codex app-server --listen stdio://` in its own
// process group and stops it when the test ends: stdin is closed (codex
// exits in tens of milliseconds), then the whole group is killed, then
// every process still carrying the server's tag (codex runs commands and
// its shell snapshot in sessions of their own, out of the group's reach),
// so nothing it started survives. Server requests (approvals and the
// like) are answered with an error; an approval policy of "never" avoids
// them.
func StartAppServer(t testing.TB, cfg AppServerConfig) *AppServer {
	t.Helper()
	if cfg.Home == "" {
		t.Fatalf("codextest.StartAppServer: no Home (use NewCodexHome)")
	}
	bin := CodexBinary(t)
	dir := cfg.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	tag := tagEnv + "=" + hex.EncodeToString(b[:])
	cmd := exec.Command(bin, append([]string{"app-server", "--listen", "stdio://"}, cfg.Args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), Env(cfg.Home)...), append(cfg.Env, tag)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("app-server stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("app-server stdout: %v", err)
	}
	s := &AppServer{
		t:       t,
		cmd:     cmd,
		stdin:   stdin,
		stderr:  &syncBuffer{},
		tag:     tag,
		exited:  make(chan struct{}),
		readEOF: make(chan struct{}),
		nextID:  1,
		pending: map[int]chan Message{},
		changed: make(chan struct{}),
	}
	cmd.Stderr = s.stderr
	// Stderr is copied by a goroutine of cmd: if a grandchild outside the
	// group kept it open, Wait gives up after this.
	cmd.WaitDelay = 2 * time.Second
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s app-server: %v", bin, err)
	}
	go func() {
		waitExited(cmd.Process.Pid)
		close(s.exited)
	}()
	go s.read(stdout)
	t.Cleanup(s.stop)
	return s
}

// PID is the app-server's process id (and its process group id).
func (s *AppServer) PID() int { return s.cmd.Process.Pid }

// Stderr returns what the server logged so far.
func (s *AppServer) Stderr() string { return s.stderr.String() }

// Exited is closed when the process has exited.
func (s *AppServer) Exited() <-chan struct{} { return s.exited }

// CloseStdin asks the server to exit, the way a client shuts it down.
func (s *AppServer) CloseStdin() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.stdin.Close()
}

func (s *AppServer) stop() {
	s.CloseStdin()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Errorf("codex app-server (pid %d) did not exit within 10s of stdin closing; killing its process group", s.PID())
	}
	// The leader is not reaped yet (waitExited uses WNOWAIT), so its pid
	// is still the group's and cannot have been reused: the kill reaches
	// only what codex started.
	_ = syscall.Kill(-s.PID(), syscall.SIGKILL)
	<-s.exited
	s.killDetached()
	// Read what codex wrote before it exited; Wait closes the pipe.
	select {
	case <-s.readEOF:
	case <-time.After(2 * time.Second):
	}
	_ = s.cmd.Wait()
	<-s.readEOF
	s.mu.Lock()
	problems := slices.Clone(s.problems)
	s.mu.Unlock()
	for _, p := range problems {
		s.t.Errorf("codex app-server: %s", p)
	}
	if s.t.Failed() {
		s.t.Logf("codex app-server stderr (last 8 KiB):\n%s", s.stderr.Tail(8<<10))
	}
}

// killDetached stops the processes codex started in sessions of their own
// that outlived it, found by the tag: SIGTERM first, so that a shell can
// run its exit traps (release a lock, say), then SIGKILL.
func (s *AppServer) killDetached() {
	began := time.Now()
	signal := syscall.SIGTERM
	signalled := map[int]syscall.Signal{}
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 50*time.Millisecond) {
		left := sdktest.FindByEnv(s.tag)
		if len(left) == 0 {
			return
		}
		switch waited := time.Since(began); {
		case waited > 10*time.Second:
			s.t.Errorf("processes codex started survive SIGKILL: %v", left)
			return
		case waited > 2*time.Second:
			signal = syscall.SIGKILL
		}
		for _, pid := range left {
			if signalled[pid] != signal {
				s.t.Logf("sending %v to pid %d, started by codex and left after it exited: %s", signal, pid, sdktest.Cmdline(pid))
				signalled[pid] = signal
			}
			_ = syscall.Kill(pid, signal)
		}
		time.Sleep(backoff) // polling /proc: there is no event for a non-child's exit
	}
}

// read delivers responses to their callers and records everything else.
func (s *AppServer) read(stdout io.Reader) {
	defer close(s.readEOF)
	br := bufio.NewReaderSize(stdout, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			s.handle(line)
		}
		if err != nil {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.pending {
		close(ch)
		delete(s.pending, id)
	}
	close(s.changed)
	s.changed = nil // no more messages: waiters stop
}

func (s *AppServer) handle(line []byte) {
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		s.mu.Lock()
		s.problems = append(s.problems, fmt.Sprintf("stdout line is not JSON (%v): %.200q", err, line))
		s.mu.Unlock()
		return
	}
	m.At = time.Now()
	if m.Method == "" {
		id, err := strconv.Atoi(string(m.ID))
		s.mu.Lock()
		ch, ok := s.pending[id]
		delete(s.pending, id)
		if err != nil || !ok {
			s.problems = append(s.problems, fmt.Sprintf("response to no request of ours: %.200q", line))
		}
		s.mu.Unlock()
		if ok {
			ch <- m
		}
		return
	}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if m.IsRequest() {
		// The turn would wait forever for an answer: say no.
		_ = s.write(map[string]any{"id": m.ID, "error": map[string]any{"code": -32601, "message": "codextest: server requests are not supported"}})
	}
}

func (s *AppServer) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, err = s.stdin.Write(append(b, '\n'))
	return err
}

// ErrServerGone is returned by calls and waits once the server's stdout
// has closed.
var ErrServerGone = errors.New("codex app-server closed its stdout")

// Call sends a request and waits for its response, returning the result
// or the error (an *RPCError for an error response).
func (s *AppServer) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan Message, 1)
	s.mu.Lock()
	if s.changed == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ErrServerGone)
	}
	id := s.nextID
	s.nextID++
	s.pending[id] = ch
	s.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if err := s.write(msg); err != nil {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: %w", method, ErrServerGone)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %w", method, m.Error)
		}
		return m.Result, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, context.Cause(ctx))
	}
}

// Notify sends a notification.
func (s *AppServer) Notify(method string, params any) error {
	msg := map[string]any{"method": method}
	if params != nil {
		msg["params"] = params
	}
	return s.write(msg)
}

// Initialize does the handshake: initialize, then initialized.
func (s *AppServer) Initialize(ctx context.Context) (json.RawMessage, error) {
	res, err := s.Call(ctx, "initialize", map[string]any{
		"clientInfo":   map[string]any{"name": "codextest", "title": nil, "version": Version},
		"capabilities": nil,
	})
	if err != nil {
		return nil, err
	}
	return res, s.Notify("initialized", nil)
}

// Messages returns the notifications and server requests so far, in order.
func (s *AppServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Wait returns the first message so far, or the next to arrive, whose
// method is method and that satisfies pred (nil: any).
func (s *AppServer) Wait(ctx context.Context, method string, pred func(Message) bool) (Message, error) {
	seen := 0
	for {
		s.mu.Lock()
		msgs, changed := s.messages[seen:], s.changed
		s.mu.Unlock()
		for _, m := range msgs {
			if m.Method == method && (pred == nil || pred(m)) {
				return m, nil
			}
		}
		seen += len(msgs)
		if changed == nil {
			return Message{}, fmt.Errorf("waiting for %s: %w", method, ErrServerGone)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("waiting for %s: %w", method, context.Cause(ctx))
		}
	}
}

// TextInput is a turn/start input holding one text.
func TextInput(text string) []map[string]any {
	return []map[string]any{{"type": "text", "text": text, "text_elements": []any{}}}
}

// syncBuffer keeps the last maxStderr bytes written to it; safe for the
// writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

// maxStderr bounds the stderr kept (a RUST_LOG=debug in the environment
// makes codex log megabytes).
const maxStderr = 1 << 20

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > 2*maxStderr {
		b.b = append(b.b[:0], b.b[len(b.b)-maxStderr:]...)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// Tail returns at most the last n bytes.
func (b *syncBuffer) Tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
