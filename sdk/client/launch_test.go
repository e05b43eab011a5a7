package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

func TestLaunchDescribesThePlugin(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))

	want := sdk.Description{
		Name:    "echo",
		Version: "1.2.3",
		Summary: "Echoes every turn back, for tthost's tests.",
		CLIs: []sdk.CLI{
			{Name: "echo", Capabilities: []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt, sdk.CapResume}},
			{Name: sdk.AnyCLI},
		},
		OptionsSchema:   `{"type":"object","properties":{"burst":{"type":"string"}}}`,
		SDKVersion:      sdk.Version,
		ProtocolVersion: sdk.ProtocolVersion,
	}
	if got := p.Description(); !reflect.DeepEqual(got, want) {
		t.Errorf("description:\n got %+v\nwant %+v", got, want)
	}
	if p.Pid() <= 0 || !sdktest.ProcessAlive(p.Pid()) {
		t.Errorf("pid %d is not a live process", p.Pid())
	}
	select {
	case <-p.Done():
		t.Error("Done is closed while the plugin runs")
	default:
	}
}

func TestLaunchRefusesABinaryThatDoesNotMatchItsChecksum(t *testing.T) {
	e := newEnv(t)
	echo := build(t, "echo")
	recorded := sdktest.SHA256File(t, echo)

	tampered := filepath.Join(t.TempDir(), "tthost-backend-echo")
	sdktest.CopyFile(t, echo, tampered, 0o755)
	f, err := os.OpenFile(tampered, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("tampered")); err != nil {
		t.Fatal(err)
	}
	f.Close()

	cases := []struct {
		name     string
		path     string
		checksum []byte
	}{
		{"a wrong checksum is refused", echo, make([]byte, 32)},
		{"a tampered copy is refused", tampered, recorded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(tc.path)
			cfg.Checksum = tc.checksum
			_, err := client.Launch(context.Background(), cfg)
			t.Logf("the host would report:\n%v", err)
			if !errors.Is(err, client.ErrChecksumMismatch) {
				t.Fatalf("got %v, want ErrChecksumMismatch", err)
			}
			actual := fmt.Sprintf("%x", sdktest.SHA256File(t, tc.path))
			for _, want := range []string{"refusing to run it", actual, fmt.Sprintf("%x", tc.checksum), "reinstall"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message lacks %q:\n%v", want, err)
				}
			}
			if alive := e.procs.Alive(); len(alive) > 0 {
				t.Errorf("a refused binary was run: processes %v", alive)
			}
		})
	}
}

func TestLaunchFailuresAreClearAndLeaveNothing(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	sdktest.CopyFile(t, build(t, "echo"), notExec, 0o644)
	script := filepath.Join(dir, "not-a-plugin")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'boom: I am a shell script' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		cfg    func() client.Config
		want   error
		stage  string
		phrase []string
	}{
		{
			name:   "a missing binary says where it looked",
			cfg:    func() client.Config { c := e.config(script); c.Path = filepath.Join(dir, "nope"); return c },
			want:   client.ErrNotFound,
			stage:  "check",
			phrase: []string{filepath.Join(dir, "nope"), "install the plugin"},
		},
		{
			name:   "a binary without the x bit says chmod",
			cfg:    func() client.Config { return e.config(notExec) },
			want:   client.ErrNotExecutable,
			stage:  "check",
			phrase: []string{"chmod +x"},
		},
		{
			name:   "a directory is not a plugin binary",
			cfg:    func() client.Config { c := e.config(script); c.Path = dir; return c },
			want:   client.ErrNotExecutable,
			stage:  "check",
			phrase: []string{"not a regular file"},
		},
		{
			name:   "a launch without a checksum is refused",
			cfg:    func() client.Config { c := e.config(script); c.Checksum = nil; return c },
			want:   client.ErrNoChecksum,
			stage:  "verify",
			phrase: []string{"SHA-256"},
		},
		{
			name:   "garbage on stdout is shown and blamed",
			cfg:    func() client.Config { return e.config(build(t, "garbage")) },
			want:   client.ErrStdoutPollution,
			stage:  "handshake",
			phrase: []string{"garbage: this is not a handshake", "must not write to stdout", "garbage: about to print junk"},
		},
		{
			name:   "a program that exits without a handshake is not a plugin",
			cfg:    func() client.Config { return e.config(script) },
			want:   client.ErrNotAPlugin,
			stage:  "handshake",
			phrase: []string{"exited with status 3", "boom: I am a shell script", "plugin.Serve"},
		},
		{
			name: "a plugin that hangs in Describe is killed",
			cfg: func() client.Config {
				c := e.config(build(t, "hang"))
				c.DescribeTimeout = 300 * time.Millisecond
				return c
			},
			want:   client.ErrDescribeTimeout,
			stage:  "describe",
			phrase: []string{"within 300ms", "it was killed"},
		},
		{
			name:   "a plugin of a future protocol names both versions",
			cfg:    func() client.Config { return e.config(build(t, "future")) },
			want:   client.ErrProtocolMismatch,
			stage:  "handshake",
			phrase: []string{"protocol version 2", "this host speaks version 1", "upgrade tthost"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := client.Launch(context.Background(), tc.cfg())
			if err == nil {
				_ = p.Stop(time.Second)
				t.Fatal("launch succeeded")
			}
			t.Logf("the host would report:\n%v", err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v\nwant %v", err, tc.want)
			}
			var le *client.LaunchError
			if !errors.As(err, &le) || le.Stage != tc.stage {
				t.Errorf("got %#v, want a *LaunchError at stage %q", err, tc.stage)
			}
			for _, want := range tc.phrase {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message lacks %q:\n%v", want, err)
				}
			}
			if left := e.procs.Alive(); len(left) > 0 {
				t.Errorf("processes left after a failed launch: %v", left)
			}
		})
	}
}

func TestStdoutPrintsInPluginCodeDoNotBreakTheHandshake(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "chatty"))
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if text, _ := deltaText(readUntil(t, s, turnDone())); text != "hi" {
		t.Errorf("turn echoed %q, want %q", text, "hi")
	}
	// Before the handshake the guard sends stray prints to stderr; after
	// it, go-plugin forwards os.Stdout. Either way the host logs them.
	for _, line := range []string{"hello from chatty init", "hello from chatty main", "hello from chatty OpenSession"} {
		if !e.sink.waitFor(line, 10*time.Second) {
			t.Errorf("the host did not log the plugin's stray output %q", line)
		}
	}
}
