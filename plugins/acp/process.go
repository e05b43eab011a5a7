package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tthost/tthost/sdk/plugin"
)

const (
	// stderrTailBytes and stderrTailLines bound the agent's last words
	// quoted in a start or exit error.
	stderrTailBytes = 4 << 10
	stderrTailLines = 10
)

// startAgent starts the ACP agent as a plugin.Process: a process group of
// its own (an npm launcher or a node relaunch runs the agent as a child:
// killing only the launcher would orphan it), tagged, so that closing the
// session reaches every process the agent started. Its stderr goes to
// tail (and the session log). Gemini CLI writes its stderr only when it
// exits, so the tail serves exit errors, not live diagnosis.
func startAgent(s settings, tail *stderrTail) (*plugin.Process, error) {
	if s.logPath != "" && tail.log == nil {
		if err := os.MkdirAll(filepath.Dir(s.logPath), 0o755); err != nil {
			return nil, fmt.Errorf("log dir: %w", err)
		}
		f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		tail.log = f
	}
	cfg := s.process()
	cfg.Stderr = tail
	return plugin.StartProcess(cfg)
}

// stdin is the agent's stdin as the JSON-RPC client writes it.
type stdin struct{ p *plugin.Process }

func (w stdin) Write(b []byte) (int, error) { return w.p.Write(b) }
func (w stdin) Close() error                { w.p.CloseStdin(); return nil }

// stderrTail copies the agent's stderr to the session log (when there is
// one) and keeps its end for error messages. It is the Codex backend's,
// until the two share one under plugins/internal.
type stderrTail struct {
	mu   sync.Mutex
	log  *os.File
	tail []byte
}

func (t *stderrTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_, _ = t.log.Write(b) // best effort: a full disk must not stop the agent
	}
	t.tail = append(t.tail, b...)
	if len(t.tail) > 2*stderrTailBytes {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-stderrTailBytes:]...)
	}
	return len(b), nil
}

// close closes the session log; call it once the process is done.
func (t *stderrTail) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_ = t.log.Close()
		t.log = nil
	}
}

// lastLines returns the last few lines of stderr, or "".
func (t *stderrTail) lastLines() string {
	t.mu.Lock()
	b := bytes.TrimSpace(t.tail)
	if len(b) > stderrTailBytes {
		b = b[len(b)-stderrTailBytes:]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	t.mu.Unlock()
	lines := strings.Split(s, "\n")
	if len(lines) > stderrTailLines {
		lines = lines[len(lines)-stderrTailLines:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
