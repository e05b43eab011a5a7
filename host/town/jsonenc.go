package town

import (
	"unicode/utf8"
)

// appendJSONString appends s as a JSON string exactly as serde_json writes
// it, so that tthost's output is byte-for-byte what tt writes: only '"',
// '\\' and control characters are escaped (\b \t \n \f \r short forms,
// others as \u00xx with lowercase hex); '<', '>', '&', U+2028 and U+2029 are
// written raw (encoding/json would escape them). Invalid UTF-8, which a Rust
// string cannot hold, becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				b = append(b, '\\', '"')
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendStringField appends `,"name":"value"` (no comma after the opening
// brace).
func appendStringField(b []byte, name, value string) []byte {
	b = appendFieldName(b, name)
	return appendJSONString(b, value)
}

func appendFieldName(b []byte, name string) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendStringList writes a JSON array of strings, compact (tags field).
func appendStringList(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}
