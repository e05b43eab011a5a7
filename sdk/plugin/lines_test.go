package plugin_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tthost/tthost/sdk/plugin"
)

func readAll(t *testing.T, r *plugin.LineReader) (lines []string, errs []error) {
	t.Helper()
	for range 100 {
		l, err := r.Next()
		if err == io.EOF {
			return lines, errs
		}
		lines, errs = append(lines, l), append(errs, err)
	}
	t.Fatal("no io.EOF after 100 lines")
	return nil, nil
}

func TestLineReaderSplitsLines(t *testing.T) {
	// One byte per read: lines split across reads come back whole.
	r := plugin.NewLineReader(iotest.OneByteReader(strings.NewReader("one\n\ntwo héllo ✓\r\nlast without newline")), 0)
	lines, errs := readAll(t, r)
	want := []string{"one", "", "two héllo ✓\r", "last without newline"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", lines, want)
	}
	for _, err := range errs {
		if err != nil {
			t.Errorf("error %v", err)
		}
	}
}

func TestLineReaderMakesTextValid(t *testing.T) {
	r := plugin.NewLineReader(strings.NewReader("a\xffb\xe6\x97\n"), 0)
	if l, err := r.Next(); err != nil || l != "a\uFFFDb\uFFFD\uFFFD" {
		t.Errorf("line %q, %v", l, err)
	}
}

func TestLineReaderBoundsALine(t *testing.T) {
	const max = 10
	// "ééééé✓" is 13 bytes: cut to 10 between characters would split ✓
	// (3 bytes at 10..12), so 10 bytes of é (5 of them) come back.
	in := "0123456789\n" + "ééééé✓ and the rest\n" + "next\n" + strings.Repeat("x", 100)
	r := plugin.NewLineReader(iotest.HalfReader(strings.NewReader(in)), max)
	lines, errs := readAll(t, r)
	want := []string{"0123456789", "ééééé", "next", "xxxxxxxxxx"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", lines, want)
	}
	for i, tooLong := range []bool{false, true, false, true} {
		if got := errors.Is(errs[i], plugin.ErrLineTooLong); got != tooLong {
			t.Errorf("line %d: error %v, want too long: %v", i, errs[i], tooLong)
		}
	}
	if !strings.Contains(errs[1].Error(), "longer than 10 bytes") {
		t.Errorf("the error does not say the limit: %v", errs[1])
	}
}

func TestLineReaderPassesOtherErrors(t *testing.T) {
	boom := errors.New("boom")
	r := plugin.NewLineReader(io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom)), 0)
	if l, err := r.Next(); l != "partial" || !errors.Is(err, boom) {
		t.Errorf("Next = %q, %v; want the partial line and the error", l, err)
	}
}
