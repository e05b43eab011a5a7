package town

import (
	"fmt"
	"strconv"
	"time"
)

// FormatHashTime writes t the way tt writes timestamps into hash fields
// (chrono's to_rfc3339): UTC, "+00:00", and 0, 3, 6 or 9 fractional digits,
// the fewest that keep the value exact.
func FormatHashTime(t time.Time) string { return string(appendTime(nil, t, "+00:00")) }

// FormatJSONTime writes t the way tt's serde writes timestamps inside JSON
// (messages, events): like FormatHashTime but with "Z".
func FormatJSONTime(t time.Time) string { return string(appendTime(nil, t, "Z")) }

func appendTime(b []byte, t time.Time, zone string) []byte {
	t = t.UTC()
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
	case ns%1_000_000 == 0:
		b = append(b, '.')
		b = appendDigits(b, ns/1_000_000, 3)
	case ns%1_000 == 0:
		b = append(b, '.')
		b = appendDigits(b, ns/1_000, 6)
	default:
		b = append(b, '.')
		b = appendDigits(b, ns, 9)
	}
	return append(b, zone...)
}

func appendDigits(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ParseTime reads an RFC 3339 timestamp as leniently as tt's reader
// (chrono's parse_from_rfc3339): "Z", "z" or any numeric offset, any number
// of fractional digits (beyond 9 are truncated), "T" or "t" between date and
// time but never a space. The result is in UTC. Unlike tt, a bad value is an
// error, never silently "now".
//
// Years are limited to 0000-9999 after conversion to UTC, so every parsed
// value can be written back by FormatHashTime and read again.
func ParseTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%w: %q: %s", ErrInvalidTime, s, why)
	}
	// YYYY-MM-DDTHH:MM:SS is 19 bytes; the offset needs at least one more.
	if len(s) < 20 {
		return bad("too short")
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return bad("not YYYY-MM-DDTHH:MM:SS")
	}
	if s[10] != 'T' && s[10] != 't' {
		return bad("date and time must be separated by T")
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 60 {
		return bad("field out of range")
	}
	i := 19
	nanos := 0
	if s[i] == '.' {
		i++
		start := i
		scale := 100_000_000
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			nanos += int(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return bad("empty fraction")
		}
	}
	if i >= len(s) {
		return bad("missing offset")
	}
	offset := 0
	switch rest := s[i:]; {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return bad("bad offset")
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad("bad offset")
	}
	// A leap second (:60) is accepted as chrono does; time.Date carries it
	// into the next minute.
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC).
		Add(-time.Duration(offset) * time.Second)
	if t.Year() < 0 || t.Year() > 9999 {
		return bad("year out of range after conversion to UTC")
	}
	return t, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
