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
	// stderrTailBytes and stderrTailLines bound the app-server's last words
	// quoted in a start or exit error.
	stderrTailBytes = 4 << 10
	stderrTailLines = 10
)

// startAppServer starts the session's app-server as a plugin.Process: a
// process group of its own, so that closing the session reaches every
// process codex starts (the npm launcher runs the native binary as a
// child: killing only the launcher would orphan it), and a tag that
// follows codex's tool commands into the sessions codex gives them
// (setsid), where the group kill cannot reach. Its stderr goes to tail
// (and the session log).
func startAppServer(s settings, tail *stderrTail) (*plugin.Process, error) {
	if s.codexHome != "" {
		// Codex refuses a CODEX_HOME that does not exist.
		if err := os.MkdirAll(s.codexHome, 0o700); err != nil {
			return nil, fmt.Errorf("codex_home: %w", err)
		}
	}
	if s.logPath != "" {
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
	p, err := plugin.StartProcess(cfg)
	if err != nil {
		tail.close()
	}
	return p, err
}

// stdin is the app-server's stdin as the JSON-RPC client writes it.
type stdin struct{ p *plugin.Process }

func (w stdin) Write(b []byte) (int, error) { return w.p.Write(b) }
func (w stdin) Close() error                { w.p.CloseStdin(); return nil }

// stderrTail copies the app-server's stderr to the session log (when there
// is one) and keeps its end for error messages.
type stderrTail struct {
	mu   sync.Mutex
	log  *os.File
	tail []byte
}

func (t *stderrTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_, _ = t.log.Write(b) // best effort: a full disk must not stop codex
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
