package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tthost/tthost/sdk"
)

const (
	// killGrace is how long a cancelled CLI has to exit on SIGTERM before
	// its process group gets SIGKILL.
	killGrace = 300 * time.Millisecond
	// drainGrace bounds reading output and writing the prompt once the
	// turn's process group is dead. Only a process that left the group
	// (setsid) can still hold the pipes then; we stop waiting for it.
	drainGrace = time.Second
	readSize   = 32 << 10
)

// turn is one run of the session's command.
type turn struct {
	id       string
	input    sdk.Input
	settings sessionSettings
	events   sdk.EventSink
	done     chan struct{} // closed after TurnCompleted

	mu        sync.Mutex
	pgid      int  // the shell's pid, which is its group id; 0 until started
	exited    bool // the shell exited and its group was killed: signal nothing more
	cancelled bool
	escalate  *time.Timer
}

func newTurn(id string, in sdk.Input, settings sessionSettings, events sdk.EventSink) *turn {
	return &turn{id: id, input: in, settings: settings, events: events, done: make(chan struct{})}
}

// interrupt asks the turn to stop. It returns at once; the turn goroutine
// reports the outcome.
func (t *turn) interrupt() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancelled {
		return
	}
	t.cancelled = true
	t.signalLocked()
}

func (t *turn) wasCancelled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cancelled
}

// signalLocked sends SIGTERM to the whole group, so the CLI can stop
// cleanly, and SIGKILL after killGrace for a CLI (or a child) that ignores
// it.
func (t *turn) signalLocked() {
	if t.pgid == 0 || t.exited {
		return
	}
	_ = syscall.Kill(-t.pgid, syscall.SIGTERM)
	t.escalate = time.AfterFunc(killGrace, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.exited {
			_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
		}
	})
}

// started records the group to signal; a cancel that came before it is
// carried out now.
func (t *turn) started(pid int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pgid = pid
	if t.cancelled {
		t.signalLocked()
	}
}

// run runs the turn to its end and returns its outcome, without the
// cancellation verdict (the session adds it). It emits the turn's deltas
// and errors; the session emits TurnStarted and TurnCompleted.
func (t *turn) run() sdk.TurnCompleted {
	transcript, err := openTranscript(t.input.TranscriptPath)
	if err != nil {
		return t.startFailed(err)
	}
	if transcript != nil {
		defer transcript.Close()
	}

	line := t.settings.command
	if t.settings.prompt != modeStdin {
		file, dir, err := writePromptFile(t.input.Text)
		if err != nil {
			return t.startFailed(err)
		}
		// Removed whatever the outcome; the CLI is gone when run returns.
		defer os.RemoveAll(dir)
		line = commandLine(line, t.settings.prompt, file)
	}

	if t.wasCancelled() {
		return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "the CLI was not started"}
	}
	p, err := t.start(line)
	if err != nil {
		return t.startFailed(err)
	}

	var wg sync.WaitGroup
	if p.stdin != nil {
		wg.Go(func() { feedStdin(p.stdin, t.input.Text) })
	}
	wg.Go(func() { t.pump(p.output, transcript) })
	waitErr := t.wait(p.cmd)
	// The group is dead, so the pipes close as soon as the kernel has
	// reaped it; the deadlines only matter when an escaped process holds
	// them.
	_ = p.output.SetReadDeadline(time.Now().Add(drainGrace))
	if p.stdin != nil {
		_ = p.stdin.SetWriteDeadline(time.Now().Add(drainGrace))
	}
	wg.Wait()
	_ = p.output.Close()
	return outcome(waitErr)
}

// process is a started turn command and our ends of its pipes.
type process struct {
	cmd    *exec.Cmd
	output *os.File // read end of the CLI's stdout and stderr
	stdin  *os.File // write end of the CLI's stdin; nil when the prompt is in a file
}

func (t *turn) start(line string) (*process, error) {
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = t.settings.workdir
	cmd.Env = t.settings.env
	// A group of its own, so a cancel and the end of the turn reach every
	// child the CLI starts. Pdeathsig takes the shell down with a plugin
	// that dies (it fires when the forking OS thread exits; Go keeps
	// threads alive, so in practice that is the process). Children the
	// shell started are killed by the SDK's immediate close on orderly
	// exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	// One pipe for both streams keeps their interleaving as the CLI wrote it.
	cmd.Stdout, cmd.Stderr = outW, outW
	var inR, inW *os.File
	if t.settings.prompt == modeStdin {
		if inR, inW, err = os.Pipe(); err != nil {
			_ = outR.Close()
			_ = outW.Close()
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		cmd.Stdin = inR
	} // else exec gives the CLI /dev/null, so it never waits on a terminal.

	err = cmd.Start()
	// The child has its own copies; ours must go so that EOF and EPIPE
	// arrive when the child's ends close.
	_ = outW.Close()
	if inR != nil {
		_ = inR.Close()
	}
	if err != nil {
		_ = outR.Close()
		if inW != nil {
			_ = inW.Close()
		}
		return nil, err
	}
	t.started(cmd.Process.Pid)
	return &process{cmd: cmd, output: outR, stdin: inW}, nil
}

// wait waits for the shell to exit, kills what is left of its process
// group, then reaps the shell.
//
// Killing the group at the end of every turn is deliberate: a one-shot CLI
// owns nothing after its turn, and a background child it left would both
// outlive the turn (Tinytown leaked these) and keep the output pipe open,
// so the turn would never see EOF. The group is killed while the shell is
// still an unreaped zombie: its pid, and so the group id, cannot be reused
// until then, so the SIGKILL cannot reach a stranger.
func (t *turn) wait(cmd *exec.Cmd) error {
	pid := cmd.Process.Pid
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	t.mu.Lock()
	t.exited = true
	if t.escalate != nil {
		t.escalate.Stop()
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: nothing left
	t.mu.Unlock()
	return cmd.Wait()
}

// feedStdin writes the prompt from its own goroutine, so a prompt larger
// than the pipe buffer cannot deadlock against a CLI that writes output
// before it has read all its input. A CLI that never reads stdin makes the
// write fail with EPIPE when it exits; that is its choice, not an error.
func feedStdin(w *os.File, text string) {
	_, _ = io.WriteString(w, text)
	_ = w.Close()
}

// pump copies the CLI's output to the transcript and to delta events as it
// arrives, one event per read (the SDK coalesces).
func (t *turn) pump(output, transcript *os.File) {
	buf := make([]byte, readSize)
	var text utf8Stream
	for {
		n, err := output.Read(buf)
		if n > 0 {
			if transcript != nil {
				if _, werr := transcript.Write(buf[:n]); werr != nil {
					t.events.Emit(sdk.ErrorEvent(t.id, "transcript_failed",
						fmt.Sprintf("writing the transcript: %v; the rest of the output is only in the events", werr), false))
					transcript = nil
				}
			}
			if s := text.decode(buf[:n]); s != "" {
				t.events.Emit(sdk.DeltaEvent(t.id, s))
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.events.Emit(sdk.ErrorEvent(t.id, "output_truncated",
					"the CLI exited but a process outside its process group still holds its output open; stopped reading", false))
			}
			break
		}
	}
	if s := text.flush(); s != "" {
		t.events.Emit(sdk.DeltaEvent(t.id, s))
	}
}

// openTranscript creates (or truncates) the turn's transcript file; "" means
// no file.
func openTranscript(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return f, nil
}

func (t *turn) startFailed(err error) sdk.TurnCompleted {
	msg := "starting the CLI: " + err.Error()
	t.events.Emit(sdk.ErrorEvent(t.id, "start_failed", msg, false))
	return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: msg}
}

// outcome maps the shell's exit to a turn outcome.
func outcome(err error) sdk.TurnCompleted {
	if err == nil {
		return sdk.TurnCompleted{Status: sdk.StatusCompleted, ExitCode: sdk.IntPtr(0)}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: err.Error()}
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		if name == "" {
			name = ws.Signal().String()
		}
		return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "killed by signal " + name}
	}
	code := ee.ExitCode()
	return sdk.TurnCompleted{Status: sdk.StatusFailed, Error: fmt.Sprintf("exit status %d", code), ExitCode: sdk.IntPtr(code)}
}

// interrupted turns the outcome of a cancelled turn into StatusInterrupted,
// keeping how the CLI ended as the summary.
func interrupted(r sdk.TurnCompleted) sdk.TurnCompleted {
	summary := "cancelled"
	if r.Error != "" {
		summary += ": " + r.Error
	}
	return sdk.TurnCompleted{Status: sdk.StatusInterrupted, Summary: summary, ExitCode: r.ExitCode}
}
