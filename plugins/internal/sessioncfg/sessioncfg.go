// Package sessioncfg is the part of reading an sdk.SessionConfig that the
// plugins' backends (plugins/codex, plugins/claude, plugins/acp and, for
// the workdir, plugins/oneshot) do alike: the workdir check, the
// per-session stderr log's path, and the parsing of SessionConfig.Options
// (keys in a stable order, unknown keys refused, enum and positive
// duration values read with errors that say what is allowed).
//
// Every error wraps sdk.ErrInvalidConfig, so OpenSession refuses the
// session at once. What an option means, its default and which options a
// backend has stay in the backend (its options.go and optionsSchema).
package sessioncfg

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
)

// MaxDuration is the longest a duration option (Whole) may be.
const MaxDuration = 24 * time.Hour

// Workdir checks SessionConfig.Workdir and returns it absolute (so a later
// change of the plugin's own directory cannot move it). who names what
// runs in it for the error, e.g. "codex" or "the agent".
func Workdir(dir, who string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%w: workdir is empty: give the directory %s runs in", sdk.ErrInvalidConfig, who)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%w: workdir %q: %v", sdk.ErrInvalidConfig, dir, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%w: workdir: %v", sdk.ErrInvalidConfig, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%w: workdir %s is not a directory", sdk.ErrInvalidConfig, abs)
	}
	return abs, nil
}

// LogPath is where the session's CLI's stderr is logged: in
// SessionConfig.LogDir, named after the agent (LogName) with suffix (e.g.
// ".codex.log"); "" when LogDir is empty (no log).
func LogPath(cfg sdk.SessionConfig, suffix string) string {
	if cfg.LogDir == "" {
		return ""
	}
	return filepath.Join(cfg.LogDir, LogName(cfg)+suffix)
}

// LogName is the agent's name (else its ID, else "session") made safe as a
// file name: path separators and NUL become '_'.
func LogName(cfg sdk.SessionConfig) string {
	name := cfg.AgentName
	if name == "" {
		name = cfg.AgentID
	}
	if name == "" {
		name = "session"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, name)
}

// Options calls set for each of opts in key order (so the first error is
// the same every time). A key not in known is refused, naming the known
// ones; an error of set is returned as the option's.
func Options(opts map[string]string, known []string, set func(key, value string) error) error {
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		if !slices.Contains(known, k) {
			return fmt.Errorf("%w: unknown option %q (known: %s)", sdk.ErrInvalidConfig, k, strings.Join(slices.Sorted(slices.Values(known)), ", "))
		}
		if err := set(k, opts[k]); err != nil {
			return fmt.Errorf("%w: option %s: %v", sdk.ErrInvalidConfig, k, err)
		}
	}
	return nil
}

// OneOf returns v when it is one of allowed, else an error listing them.
func OneOf(v string, allowed []string) (string, error) {
	if slices.Contains(allowed, v) {
		return v, nil
	}
	return "", fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

// Whole reads v as a positive whole number of unit (time.Millisecond or
// time.Second), at most MaxDuration.
func Whole(v string, unit time.Duration) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > int64(MaxDuration/unit) {
		return 0, fmt.Errorf("%q is not a whole number of %s between 1 and %d", v, unitName(unit), MaxDuration/unit)
	}
	return time.Duration(n) * unit, nil
}

func unitName(unit time.Duration) string {
	switch unit {
	case time.Millisecond:
		return "milliseconds"
	case time.Second:
		return "seconds"
	}
	return "units of " + unit.String()
}
