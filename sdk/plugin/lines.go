package plugin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// DefaultMaxLine is the line length a LineReader allows unless told
// otherwise.
const DefaultMaxLine = 1 << 20

// ErrLineTooLong is wrapped by the error LineReader.Next returns with a line
// it had to cut.
var ErrLineTooLong = errors.New("line too long")

// LineReader splits a CLI's output into lines, with a bound on how long a
// line may grow in memory. It is not safe for concurrent use: one
// goroutine reads a CLI's output.
type LineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

// NewLineReader reads lines from r, each at most max bytes (max <= 0
// means DefaultMaxLine).
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	return &LineReader{br: bufio.NewReaderSize(r, min(max, 64<<10)), max: max}
}

// Next returns the next line, without its newline, as valid UTF-8: bytes
// that are not UTF-8 become U+FFFD, one per byte.
//
// A line longer than the maximum comes back cut to it, between two
// characters, with an error wrapping ErrLineTooLong; the rest of that line
// is skipped, and the next call returns the line after it. At the end of
// the input, a last line without a newline comes back first (nil error),
// then io.EOF. Other read errors (a deadline after the CLI was killed) come
// back as they are, with the line read so far.
func (r *LineReader) Next() (string, error) {
	r.buf = r.buf[:0]
	tooLong := false
	for {
		frag, err := r.br.ReadSlice('\n')
		n := len(frag)
		if err == nil {
			n-- // the newline does not count
		}
		if room := r.max - len(r.buf); n > room {
			if room > 0 {
				r.buf = append(r.buf, frag[:room]...)
			}
			tooLong = true
		} else if !tooLong {
			r.buf = append(r.buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		complete := err == nil
		if complete && !tooLong {
			r.buf = r.buf[:len(r.buf)-1] // the newline
		}
		line := r.buf
		if tooLong {
			line = line[:completeRunes(line)]
			return sanitize(line), fmt.Errorf("%w: a line longer than %d bytes was cut", ErrLineTooLong, r.max)
		}
		switch {
		case complete:
			return sanitize(line), nil
		case err == io.EOF && len(line) > 0:
			return sanitize(line), nil // the next call returns io.EOF
		}
		return sanitize(line), err
	}
}

// Buffered is how many bytes of output are read but not yet returned as
// lines: 0 means the reader has caught up with the CLI, the moment to
// flush what was buffered downstream.
func (r *LineReader) Buffered() int { return r.br.Buffered() }

// completeRunes returns the length of b without an incomplete UTF-8
// character at its end.
func completeRunes(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
