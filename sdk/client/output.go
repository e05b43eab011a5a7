package client

import (
	"bytes"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// tail keeps the last bytes written to it: the end of a plugin's stderr,
// quoted when the plugin fails to start.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lineLogger logs what a plugin writes to its os.Stdout or os.Stderr after
// the handshake (go-plugin forwards those over gRPC), one log line per
// line, so stray output ends up in the host's log rather than nowhere.
type lineLogger struct {
	mu     sync.Mutex
	log    hclog.Logger
	stream string
	buf    []byte
}

const maxLine = 64 << 10

func newLineLogger(log hclog.Logger, stream string) *lineLogger {
	return &lineLogger{log: log, stream: stream}
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.emit(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineLogger) emit(line []byte) {
	if len(bytes.TrimSpace(line)) > 0 {
		w.log.Info("plugin output", "stream", w.stream, "line", string(line))
	}
}
