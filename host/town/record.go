package town

import (
	"fmt"
	"strconv"
	"time"
)

// FieldProblem reports a hash field that was missing or did not parse.
// tt hides these (a bad timestamp silently becomes "now", a bad number 0, an
// unknown enum its default); tthost reads the same default-or-zero value but
// records why, so a corrupted heartbeat cannot look permanently fresh.
type FieldProblem struct {
	Field string
	Value string // the raw value; empty when the field was missing
	Err   error
}

func (p FieldProblem) Error() string {
	return fmt.Sprintf("field %s=%q: %v", p.Field, p.Value, p.Err)
}

// recordReader reads fields of one HGETALL result and collects problems.
type recordReader struct {
	m        map[string]string
	problems []FieldProblem
}

func (r *recordReader) problem(name, v string, err error) {
	r.problems = append(r.problems, FieldProblem{Field: name, Value: v, Err: err})
}

// required returns a field that tt always writes; a missing one is recorded.
func (r *recordReader) required(name string) string {
	v, ok := r.m[name]
	if !ok {
		r.problem(name, "", fmt.Errorf("missing"))
	}
	return v
}

// time reads a timestamp; missing or invalid reads as the zero time plus a
// problem (never "now").
func (r *recordReader) time(name string, required bool) time.Time {
	v, ok := r.m[name]
	if !ok {
		if required {
			r.problem(name, "", fmt.Errorf("missing"))
		}
		return time.Time{}
	}
	t, err := ParseTime(v)
	if err != nil {
		r.problem(name, v, err)
		return time.Time{}
	}
	return t
}

// uint reads a decimal counter; a bad value reads as 0 (as in tt) plus a problem.
func (r *recordReader) uint(name string) uint64 {
	v := r.required(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		r.problem(name, v, err)
		return 0
	}
	return n
}

// optionalID reads an optional id field in canonical form; an invalid id is
// kept verbatim (so nothing is lost) and recorded.
func (r *recordReader) optionalID(name string) string {
	v, ok := r.m[name]
	if !ok {
		return ""
	}
	c, err := ParseID(v)
	if err != nil {
		r.problem(name, v, err)
		return v
	}
	return c
}

// id reads the required id field; without a valid one the record is
// unusable (tt skips such hashes too).
func (r *recordReader) id(kind, key string) (string, error) {
	v, ok := r.m["id"]
	if !ok {
		return "", fmt.Errorf("%w: %s hash %s has no id field", ErrInvalidRecord, kind, key)
	}
	c, err := ParseID(v)
	if err != nil {
		return "", fmt.Errorf("%w: %s hash %s: %v", ErrInvalidRecord, kind, key, err)
	}
	return c, nil
}
