package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// transcript is a turn's log for people (Input.TranscriptPath): the
// assistant's text as it streams, and one line per tool call, approval and
// error. It is opened before turn/start is sent, so nothing the turn says
// is lost (Tinytown opened it after: docs/compatibility.md#d8), and
// buffered: the reader flushes it whenever it has caught up with codex's
// output, so the file stays live without a write per token.
//
// A transcript is only used under the session's lock. A nil transcript
// (no path) ignores everything.
type transcript struct {
	f   *os.File
	w   *bufio.Writer
	bol bool  // at the beginning of a line
	err error // the first write error; later writes are skipped
}

func openTranscript(path string) (*transcript, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return &transcript{f: f, w: bufio.NewWriterSize(f, 32<<10), bol: true}, nil
}

// text appends streamed assistant text.
func (t *transcript) text(s string) {
	if t == nil || t.err != nil || s == "" {
		return
	}
	_, t.err = t.w.WriteString(s)
	t.bol = strings.HasSuffix(s, "\n")
}

// endText ends the assistant's message with a line break.
func (t *transcript) endText() {
	if t != nil && !t.bol {
		t.text("\n")
	}
}

// note writes one line of its own, e.g. "[tool] command `ls`: completed, exit 0".
func (t *transcript) note(format string, args ...any) {
	if t == nil || t.err != nil {
		return
	}
	t.endText()
	line := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	_, t.err = fmt.Fprintf(t.w, "[%s]\n", line)
	t.bol = true
}

func (t *transcript) flush() {
	if t != nil && t.err == nil {
		t.err = t.w.Flush()
	}
}

// close flushes and closes the file, returning the first error.
func (t *transcript) close() error {
	if t == nil {
		return nil
	}
	t.flush()
	if err := t.f.Close(); t.err == nil {
		t.err = err
	}
	return t.err
}
