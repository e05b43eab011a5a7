// Package stderrtail keeps the end of a CLI's stderr for the plugins'
// error messages ("its last output on stderr: ..."), and copies all of it
// to the session's log file when there is one.
package stderrtail

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

const (
	// tailBytes and tailLines bound the CLI's last words quoted in a
	// start or exit error.
	tailBytes = 4 << 10
	tailLines = 10
)

// Tail is an io.Writer for a CLI's stderr (plugin.ProcessConfig.Stderr).
// Its zero value keeps the tail and logs nothing. It is safe for
// concurrent use.
type Tail struct {
	mu   sync.Mutex
	log  *os.File
	tail []byte
}

// OpenLog appends everything written from now on to the file at path,
// creating it and its directory.
func (t *Tail) OpenLog(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_ = t.log.Close()
	}
	t.log = f
	return nil
}

func (t *Tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_, _ = t.log.Write(b) // best effort: a full disk must not stop the CLI
	}
	t.tail = append(t.tail, b...)
	if len(t.tail) > 2*tailBytes {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-tailBytes:]...)
	}
	return len(b), nil
}

// Close closes the log; call it once the process is done.
func (t *Tail) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_ = t.log.Close()
		t.log = nil
	}
}

// LastLines returns the last few lines of stderr, or "".
func (t *Tail) LastLines() string {
	t.mu.Lock()
	b := bytes.TrimSpace(t.tail)
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	t.mu.Unlock()
	lines := strings.Split(s, "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// Quote is LastLines as the end of an error message ("; its last output on
// stderr:\n..."), or "" when stderr said nothing.
func (t *Tail) Quote() string {
	if tail := t.LastLines(); tail != "" {
		return "; its last output on stderr:\n" + tail
	}
	return ""
}
