package shellwords

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"  a\tb\nc  ", []string{"a", "b", "c"}, ""},
		{`a'b c'd`, []string{"ab cd"}, ""},
		{`"a \"b\" \\ \$x \q"`, []string{`a "b" \ $x \q`}, ""},
		{`''`, []string{""}, ""},
		{`a\ b`, []string{"a b"}, ""},
		{"a\\\nb", []string{"ab"}, ""},
		{`'unterminated`, nil, "single quote"},
		{`"unterminated`, nil, "double quote"},
		{`trailing\`, nil, "backslash"},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Split(%q) = %q, %v; want an error about %s", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in         string
		env, words []string
	}{
		{"codex exec", nil, []string{"codex", "exec"}},
		{"A=1 B='x y' claude -p C=2", []string{"A=1", "B=x y"}, []string{"claude", "-p", "C=2"}},
		{"A=1", []string{"A=1"}, nil},
		{"", nil, nil},
	}
	for _, tt := range tests {
		env, words, err := SplitCommand(tt.in)
		if err != nil || !slices.Equal(env, tt.env) || !slices.Equal(words, tt.words) {
			t.Errorf("SplitCommand(%q) = %q, %q, %v; want %q, %q", tt.in, env, words, err, tt.env, tt.words)
		}
	}
	if _, _, err := SplitCommand(`'open`); err == nil {
		t.Error("SplitCommand of an unterminated quote: no error")
	}
}
