package plugin

import (
	"strings"
	"unicode/utf8"
)

// utf8Stream turns a CLI's raw output, read in arbitrary chunks, into
// valid UTF-8 strings: protobuf rejects invalid strings, so one bad byte
// from a CLI would otherwise break the whole event stream. A multi-byte
// sequence split across reads is carried into the next chunk; invalid
// bytes become U+FFFD one per byte (utf8.DecodeRune's rule), so the result
// does not depend on where the reads split the output.
type utf8Stream struct {
	carry []byte // an incomplete trailing sequence, at most 3 bytes
}

// decode returns the valid text of carry+p, keeping an incomplete trailing
// sequence for the next call.
func (u *utf8Stream) decode(p []byte) string {
	buf := p
	if len(u.carry) > 0 {
		buf = append(u.carry, p...)
		u.carry = nil
	}
	// Walk back to the start of the last rune; if it is a valid prefix that
	// the next read may complete, keep it.
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				u.carry = append([]byte(nil), buf[i:]...)
				buf = buf[:i]
			}
			break
		}
	}
	return sanitize(buf)
}

// flush returns what is left at the end of the output: an incomplete
// sequence that will never be completed.
func (u *utf8Stream) flush() string {
	s := sanitize(u.carry)
	u.carry = nil
	return s
}

// sanitize returns b as valid UTF-8, each invalid byte replaced by U+FFFD.
func sanitize(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}
