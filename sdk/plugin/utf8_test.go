package plugin

import (
	"testing"
	"unicode/utf8"
)

func TestUTF8Stream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"ASCII passes through", []string{"hello", " world"}, "hello world"},
		{"a 3-byte rune split 1+2", []string{"a\xe6", "\x97\xa5b"}, "a日b"},
		{"a 3-byte rune split 2+1", []string{"a\xe6\x97", "\xa5b"}, "a日b"},
		{"a 4-byte rune split over four reads", []string{"\xf0", "\x9f", "\x98", "\x80"}, "😀"},
		{"an invalid byte becomes U+FFFD", []string{"a\xffb"}, "a\uFFFDb"},
		{"each invalid byte becomes one U+FFFD", []string{"\xff\xfe"}, "\uFFFD\uFFFD"},
		{"a stray continuation byte becomes U+FFFD", []string{"a\x80", "b"}, "a\uFFFDb"},
		{"an incomplete rune at the end is flushed as U+FFFD", []string{"ok\xe6\x97"}, "ok\uFFFD\uFFFD"},
		{"an interrupted rune becomes U+FFFD and the rest survives", []string{"\xe6", "x"}, "\uFFFDx"},
		{"an invalid prefix is not carried", []string{"\xe0\x80", "\x80"}, "\uFFFD\uFFFD\uFFFD"},
		{"a surrogate encoding is invalid", []string{"\xed\xa0", "\x80"}, "\uFFFD\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		var u utf8Stream
		var got string
		for _, c := range tt.chunks {
			s := u.decode([]byte(c))
			if !utf8.ValidString(s) {
				t.Errorf("%s: decode(%q) = %q is not valid UTF-8", tt.name, c, s)
			}
			got += s
		}
		got += u.flush()
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzUTF8Stream checks, for any CLI output and any way reads split it,
// that every piece is valid UTF-8 and the whole does not depend on the
// split (and equals the input when that was valid).
func FuzzUTF8Stream(f *testing.F) {
	f.Add([]byte("héllo ✓ 日本"), uint8(3), uint8(1))
	f.Add([]byte("\xff\xe6\x97\xa5\xf0\x9f\x98\x80\xed\xa0\x80"), uint8(2), uint8(5))
	f.Add([]byte("a\xe6\x97"), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, a, b uint8) {
		var whole utf8Stream
		want := whole.decode(data) + whole.flush()
		if !utf8.ValidString(want) || (utf8.Valid(data) && want != string(data)) {
			t.Fatalf("decode(%q) = %q", data, want)
		}
		// Split into chunks of sizes a, b, a, b, ... (at least 1).
		var u utf8Stream
		var got string
		sizes := [2]int{int(a)%7 + 1, int(b)%7 + 1}
		for i, rest := 0, data; len(rest) > 0; i++ {
			n := min(sizes[i%2], len(rest))
			s := u.decode(rest[:n])
			if !utf8.ValidString(s) {
				t.Fatalf("chunk %q decoded to invalid %q", rest[:n], s)
			}
			got += s
			rest = rest[n:]
		}
		got += u.flush()
		if got != want {
			t.Fatalf("split %v: got %q, want %q for %q", sizes, got, want, data)
		}
	})
}
