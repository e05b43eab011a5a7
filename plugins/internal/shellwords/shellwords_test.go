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
