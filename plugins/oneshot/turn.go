package main

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// killGrace is how long a cancelled CLI has to exit on SIGTERM before its
// process group gets SIGKILL.
const killGrace = 300 * time.Millisecond

// run runs one turn of the session's command to its end and returns its
// outcome. The output streams to the turn (deltas and transcript) as it
// comes; when the CLI exits, what it left running is killed (its group,
// and anything carrying its tag), so no CLI process outlives its turn.
func (s *session) run(t *plugin.Turn, text string) sdk.TurnCompleted {
	line := s.settings.command
	if s.settings.prompt != modeStdin {
		file, dir, err := writePromptFile(text)
		if err != nil {
			return startFailed(t, err)
		}
		// Removed whatever the outcome; the CLI is gone when run returns.
		defer os.RemoveAll(dir)
		line = commandLine(line, s.settings.prompt, file)
	}
	if t.Cancelled() {
		return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "the CLI was not started"}
	}
	p, err := plugin.StartProcess(plugin.ProcessConfig{
		Command: line,
		Dir:     s.settings.workdir,
		Env:     s.settings.env,
		// With the prompt in a file, the CLI gets /dev/null as stdin, so it
		// never waits on a terminal.
		NoStdin: s.settings.prompt != modeStdin,
		Grace:   killGrace,
	})
	if err != nil {
		return startFailed(t, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.proc = nil
		s.mu.Unlock()
	}()
	if t.Cancelled() { // a cancel that came while the CLI started
		go p.Close(context.Background(), sdk.CloseImmediate)
	}
	if s.settings.prompt == modeStdin {
		// From a goroutine of its own, so a prompt larger than the pipe
		// cannot deadlock against a CLI that writes before it has read it
		// all. A CLI that never reads stdin makes the write fail when it
		// exits; that is its choice, not an error.
		go func() {
			_, _ = p.WriteString(text)
			p.CloseStdin()
		}()
	}
	// The output ends when every process that could write it is gone.
	if _, err := io.Copy(t, p.Output()); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Emit(sdk.ErrorEvent("", "output_truncated",
			"the CLI exited but a process outside its process group still holds its output open; stopped reading", false))
	}
	if err := p.Wait(); err != nil {
		return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: err.Error(), ExitCode: p.ExitInfo().ExitCode}
	}
	return sdk.TurnCompleted{Status: sdk.StatusCompleted, ExitCode: sdk.IntPtr(0)}
}

func startFailed(t *plugin.Turn, err error) sdk.TurnCompleted {
	msg := "starting the CLI: " + err.Error()
	t.Emit(sdk.ErrorEvent("", "start_failed", msg, false))
	return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: msg}
}
