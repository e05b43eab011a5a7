package town

import (
	"errors"
	"testing"
	"time"
)

func TestTimesAreWrittenWithTheFewestOf0369FractionalDigits(t *testing.T) {
	base := time.Date(2026, 4, 23, 16, 32, 34, 0, time.UTC)
	for _, tc := range []struct {
		ns         int
		hash, json string
	}{
		{0, "2026-04-23T16:32:34+00:00", "2026-04-23T16:32:34Z"},
		{500_000_000, "2026-04-23T16:32:34.500+00:00", "2026-04-23T16:32:34.500Z"},
		{123_000_000, "2026-04-23T16:32:34.123+00:00", "2026-04-23T16:32:34.123Z"},
		{123_456_000, "2026-04-23T16:32:34.123456+00:00", "2026-04-23T16:32:34.123456Z"},
		{123_456_789, "2026-04-23T16:32:34.123456789+00:00", "2026-04-23T16:32:34.123456789Z"},
		{1, "2026-04-23T16:32:34.000000001+00:00", "2026-04-23T16:32:34.000000001Z"},
	} {
		ts := base.Add(time.Duration(tc.ns))
		if got := FormatHashTime(ts); got != tc.hash {
			t.Errorf("FormatHashTime(%d ns) = %q, want %q", tc.ns, got, tc.hash)
		}
		if got := FormatJSONTime(ts); got != tc.json {
			t.Errorf("FormatJSONTime(%d ns) = %q, want %q", tc.ns, got, tc.json)
		}
	}
	// Non-UTC input is converted.
	cet := time.FixedZone("x", 2*3600)
	if got := FormatHashTime(time.Date(2026, 4, 23, 18, 0, 0, 0, cet)); got != "2026-04-23T16:00:00+00:00" {
		t.Errorf("offset not converted: %q", got)
	}
}

func TestParseTimeIsAsLenientAsChrono(t *testing.T) {
	want := time.Date(2026, 4, 23, 22, 32, 34, 123456789, time.UTC)
	for _, in := range []string{
		"2026-04-23T22:32:34.123456789+00:00",
		"2026-04-23T22:32:34.123456789Z",
		"2026-04-23T22:32:34.123456789z",
		"2026-04-23t22:32:34.123456789Z",
		"2026-04-24T00:32:34.123456789+02:00",
		"2026-04-23T20:02:34.123456789-02:30",
		"2026-04-23T22:32:34.123456789-00:00",
		"2026-04-23T22:32:34.1234567891234Z", // digits beyond 9 are truncated
	} {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v UTC", in, got, err, want)
		}
	}
	if got, err := ParseTime("2026-04-23T22:32:34Z"); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("no fraction: %v %v", got, err)
	}
	for _, in := range []string{
		"", "now", "2026-04-23 22:32:34Z", "2026-04-23T22:32:34", "2026-04-23T22:32:34.Z",
		"2026-02-30T00:00:00Z", "2026-04-23T24:00:00Z", "2026-13-01T00:00:00Z",
		"2026-04-23T22:32:34+0000", "2026-04-23T22:32:34+24:00", "2026-04-23T22:32:34Zjunk",
		"+2026-04-23T22:32:34Z", "0000-01-01T00:00:00+01:00",
	} {
		if _, err := ParseTime(in); !errors.Is(err, ErrInvalidTime) {
			t.Errorf("ParseTime(%q) err = %v, want ErrInvalidTime", in, err)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-04-23T22:32:34.123456789+00:00", "2026-04-23T22:32:34Z",
		"1999-12-31t23:59:60.5-23:59", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s)
		if err != nil {
			return
		}
		// Whatever parses can be written both ways and reads back equal.
		for _, out := range []string{FormatHashTime(got), FormatJSONTime(got)} {
			again, err := ParseTime(out)
			if err != nil || !again.Equal(got) {
				t.Fatalf("%q -> %q -> %v, %v", s, out, again, err)
			}
		}
	})
}
