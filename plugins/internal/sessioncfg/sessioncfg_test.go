package sessioncfg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
)

func TestWorkdir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if got, err := Workdir(".", "codex"); err != nil || got != dir {
		t.Errorf("Workdir(.) = %q, %v; want %q", got, err, dir)
	}
	for in, want := range map[string]string{
		"":                         "give the directory codex runs in",
		file:                       "is not a directory",
		filepath.Join(dir, "nope"): "no such file",
	} {
		_, err := Workdir(in, "codex")
		if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("Workdir(%q) error = %v; want ErrInvalidConfig saying %q", in, err, want)
		}
	}
}

func TestLogPath(t *testing.T) {
	tests := []struct {
		cfg  sdk.SessionConfig
		want string
	}{
		{sdk.SessionConfig{AgentName: "a/b\\c", AgentID: "id", LogDir: "/logs"}, "/logs/a_b_c.x.log"},
		{sdk.SessionConfig{AgentID: "id-1", LogDir: "/logs"}, "/logs/id-1.x.log"},
		{sdk.SessionConfig{LogDir: "/logs"}, "/logs/session.x.log"},
		{sdk.SessionConfig{AgentName: "a"}, ""},
	}
	for _, tt := range tests {
		if got := LogPath(tt.cfg, ".x.log"); got != tt.want {
			t.Errorf("LogPath(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestOptions(t *testing.T) {
	var seen []string
	set := func(k, v string) error {
		seen = append(seen, k+"="+v)
		if v == "bad" {
			return errors.New("bad value")
		}
		return nil
	}
	known := []string{"b", "a"}
	if err := Options(map[string]string{"b": "2", "a": "1"}, known, set); err != nil || strings.Join(seen, ",") != "a=1,b=2" {
		t.Errorf("Options = %v, set saw %v; want nil and a=1,b=2 in key order", err, seen)
	}
	err := Options(map[string]string{"a": "1", "c": "3"}, known, set)
	if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), `unknown option "c" (known: a, b)`) {
		t.Errorf("an unknown key: %v", err)
	}
	err = Options(map[string]string{"a": "bad"}, known, set)
	if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), "option a: bad value") {
		t.Errorf("a bad value: %v", err)
	}
}

func TestOneOf(t *testing.T) {
	if v, err := OneOf("x", []string{"x", "y"}); err != nil || v != "x" {
		t.Errorf("OneOf(x) = %q, %v", v, err)
	}
	if _, err := OneOf("z", []string{"x", "y"}); err == nil || err.Error() != `"z" is not one of x, y` {
		t.Errorf("OneOf(z) error = %v", err)
	}
}

func TestWhole(t *testing.T) {
	if d, err := Whole(" 1500 ", time.Millisecond); err != nil || d != 1500*time.Millisecond {
		t.Errorf("Whole(1500 ms) = %v, %v", d, err)
	}
	if d, err := Whole("86400", time.Second); err != nil || d != MaxDuration {
		t.Errorf("Whole(86400 s) = %v, %v", d, err)
	}
	for _, v := range []string{"0", "-1", "1.5", "", "x", "86401"} {
		_, err := Whole(v, time.Second)
		if err == nil || !strings.Contains(err.Error(), "whole number of seconds between 1 and 86400") {
			t.Errorf("Whole(%q s) error = %v", v, err)
		}
	}
	if _, err := Whole("86400001", time.Millisecond); err == nil || !strings.Contains(err.Error(), "milliseconds between 1 and 86400000") {
		t.Errorf("Whole(86400001 ms) error = %v", err)
	}
}
