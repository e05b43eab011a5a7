package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tthost/tthost/sdk"
)

const (
	// defaultGrace is how long Close waits between SIGTERM and SIGKILL.
	defaultGrace = 2 * time.Second
	// tagKillTimeout bounds killing what a process left behind, found by
	// its tag: a process may start children while it is being killed.
	tagKillTimeout = 2 * time.Second
	// drainGrace bounds reading a process's output once everything it
	// started is dead. Only a process that dropped the tag (it cleared its
	// environment) can still hold the pipe then; readers stop waiting for
	// it and get an error wrapping os.ErrDeadlineExceeded.
	drainGrace = time.Second
)

// ErrStdinClosed is what Process.Write returns once the process's stdin is
// closed (CloseStdin, Close, or the process ended).
var ErrStdinClosed = errors.New("the CLI's stdin is closed")

// ProcessConfig says how StartProcess starts a CLI. Exactly one of Command
// and Args is set.
type ProcessConfig struct {
	// Command is a shell command line, run with `sh -c`: the way a CLI's
	// configured command (SessionConfig.Command) is meant. Prefix it with
	// "exec " to make the CLI itself the process (and group) leader.
	Command string
	// Args is a program and its arguments, run directly; Args[0] is
	// looked up in PATH.
	Args []string
	// Dir is the working directory (SessionConfig.Workdir).
	Dir string
	// Env is added, in name order, to the plugin's environment without its
	// internal variables, as ChildEnv does: SessionConfig.Env.
	Env map[string]string
	// ExtraEnv holds KEY=VALUE entries added after Env (later ones win),
	// for settings of the backend's own, such as the CLI's home directory.
	ExtraEnv []string
	// NoStdin gives the process /dev/null as its stdin, instead of a pipe
	// that Write feeds.
	NoStdin bool
	// Stderr receives what the process writes to stderr. When nil, stderr
	// goes to Output together with stdout, in the order it was written.
	Stderr io.Writer
	// WriteTimeout bounds each Write, so that a CLI that stops reading its
	// stdin cannot block the caller forever. Zero: no bound.
	WriteTimeout time.Duration
	// Grace is how long Close waits after SIGTERM before it kills. Zero
	// means 2s.
	Grace time.Duration
}

// Process is a CLI process a backend supervises, usually one per session
// (or per turn, for a one-shot CLI). StartProcess starts it in a process
// group of its own, tagged with a fresh ProcessTag, with the environment
// ChildEnv builds; from then on the Process reaps it, and when it exits
// kills what it left behind: the rest of its group, and every process that
// still carries its tag (daemons that moved to a session of their own).
// So once Done is closed, nothing the process started is alive, and
// Close makes that happen at once when the CLI will not end by itself,
// signals ignored or not.
//
// Every method is safe for concurrent use.
type Process struct {
	cfg    ProcessConfig
	cmd    *exec.Cmd
	pid    int
	tag    ProcessTag
	output *os.File // read end of stdout (and stderr when merged)
	stdin  *os.File // write end; nil with NoStdin
	stderr *os.File // read end of stderr; nil when merged into output
	done   chan struct{}
	hurry  chan struct{} // closed by Kill: Close stops waiting

	wmu sync.Mutex // one Write at a time, so writes never interleave

	mu         sync.Mutex
	exited     bool // the leader exited and its group was killed: signal nothing more
	stdinShut  bool
	hurryShut  bool
	state      *os.ProcessState
	stderrDone chan struct{} // closed when stderr has been copied; nil when merged
}

// StartProcess starts a CLI process as cfg says. The error wraps
// sdk.ErrInvalidConfig when cfg.Env holds an entry exec cannot pass, and
// otherwise says why the process could not start (a program not found, a
// working directory that does not exist).
func StartProcess(cfg ProcessConfig) (*Process, error) {
	var argv []string
	switch {
	case cfg.Command != "" && len(cfg.Args) == 0:
		argv = []string{"sh", "-c", cfg.Command}
	case cfg.Command == "" && len(cfg.Args) > 0:
		argv = cfg.Args
	default:
		return nil, fmt.Errorf("%w: give a process either a command line or arguments", sdk.ErrInvalidConfig)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = defaultGrace
	}
	env, err := cfg.Environ()
	if err != nil {
		return nil, err
	}
	tag := NewProcessTag()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cfg.Dir
	// The tag last: nothing the backend adds can remove it.
	cmd.Env = append(env, tag.Env())
	cmd.SysProcAttr = sysProcAttr()

	var ours, theirs []*os.File // closed on failure; theirs also once the child has them
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		return r, w, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	ours, theirs = append(ours, outR), append(theirs, outW)
	cmd.Stdout, cmd.Stderr = outW, outW
	var inW, errR *os.File
	if !cfg.NoStdin {
		inR, w, err := pipe()
		if err != nil {
			closeAll(append(ours, theirs...))
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		inW = w
		ours, theirs = append(ours, inW), append(theirs, inR)
		cmd.Stdin = inR
	} // else os/exec gives the CLI /dev/null, so it never waits on a terminal.
	if cfg.Stderr != nil {
		r, w, err := pipe()
		if err != nil {
			closeAll(append(ours, theirs...))
			return nil, fmt.Errorf("stderr pipe: %w", err)
		}
		errR = r
		ours, theirs = append(ours, errR), append(theirs, w)
		cmd.Stderr = w
	}
	err = cmd.Start()
	// The child has its own copies; ours must go so that EOF and EPIPE
	// arrive when the child's ends close.
	closeAll(theirs)
	if err != nil {
		closeAll(ours)
		if cfg.Dir != "" {
			return nil, fmt.Errorf("start %s in %s: %w", argv[0], cfg.Dir, err)
		}
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &Process{
		cfg:    cfg,
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		tag:    tag,
		output: outR,
		stdin:  inW,
		done:   make(chan struct{}),
		hurry:  make(chan struct{}),
	}
	if errR != nil {
		p.stderr = errR
		p.stderrDone = make(chan struct{})
		go p.copyStderr()
	}
	go p.reap()
	return p, nil
}

// Environ is the environment StartProcess gives the process, but for its
// tag: ChildEnv(Env), then ExtraEnv. The error wraps sdk.ErrInvalidConfig
// for an entry exec cannot pass, so OpenSession can check it at once.
func (cfg ProcessConfig) Environ() ([]string, error) {
	env, err := ChildEnv(cfg.Env)
	if err != nil {
		return nil, err
	}
	return append(env, cfg.ExtraEnv...), nil
}

// Pid is the process's id, which is also its process group's id.
func (p *Process) Pid() int { return p.pid }

// Tag is the tag every process it starts inherits.
func (p *Process) Tag() ProcessTag { return p.tag }

// Output is the process's stdout (and stderr, unless ProcessConfig.Stderr
// takes it), as it writes it. Read it from one goroutine, to its end: a
// CLI whose output nobody reads blocks once the pipe is full. It ends with
// io.EOF when every process that could write to it is gone, or, when a
// process that dropped the tag still holds it, with an error wrapping
// os.ErrDeadlineExceeded shortly after Done.
func (p *Process) Output() io.Reader { return outputReader{p.output} }

// outputReader closes the pipe when its reading ends.
type outputReader struct{ f *os.File }

func (r outputReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	if err != nil {
		_ = r.f.Close()
		if errors.Is(err, os.ErrClosed) {
			err = io.EOF
		}
	}
	return n, err
}

// Write writes b to the process's stdin, whole: concurrent writes never
// interleave. It blocks while the CLI does not read (at most
// ProcessConfig.WriteTimeout, when set) and fails with ErrStdinClosed once
// stdin is closed, or with the pipe's error once the CLI is gone.
func (p *Process) Write(b []byte) (int, error) {
	if p.stdin == nil {
		return 0, fmt.Errorf("%w: the process was started without stdin", ErrStdinClosed)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.stdinClosed() {
		return 0, ErrStdinClosed
	}
	if p.cfg.WriteTimeout > 0 {
		_ = p.stdin.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	}
	n, err := p.stdin.Write(b)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrClosed), p.stdinClosed(), p.gone():
		err = fmt.Errorf("%w (%v)", ErrStdinClosed, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: the CLI has not read its input for %v", err, p.cfg.WriteTimeout)
	}
	return n, err
}

// gone reports whether the process has exited (its group was killed).
func (p *Process) gone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// WriteString is Write of a string.
func (p *Process) WriteString(s string) (int, error) { return p.Write([]byte(s)) }

func (p *Process) stdinClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdinShut
}

// CloseStdin closes the process's stdin: end of input, which asks most
// CLIs to finish and exit. A Write in progress fails.
func (p *Process) CloseStdin() {
	p.mu.Lock()
	shut := p.stdinShut
	p.stdinShut = true
	p.mu.Unlock()
	if !shut && p.stdin != nil {
		_ = p.stdin.Close()
	}
}

// Signal sends sig to the process's whole group (the CLI and the commands
// it runs in the foreground), as a terminal's Ctrl-C does. Once the
// process has exited it does nothing: its group id may belong to a
// stranger by then.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Kill ends the process and everything it started now: SIGKILL to its
// group and to every process carrying its tag. It does not wait; Done
// follows. A Close waiting for the process gives up waiting.
func (p *Process) Kill() {
	p.mu.Lock()
	if !p.hurryShut {
		p.hurryShut = true
		close(p.hurry)
	}
	p.mu.Unlock()
	_ = p.Signal(syscall.SIGKILL)
	for _, pid := range p.tag.Alive() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Close ends the process and returns how it ended, once Done is closed.
// CloseGraceful closes stdin and waits for the process to exit until ctx
// ends; then, as CloseImmediate does at once, it sends SIGTERM to the
// group, waits ProcessConfig.Grace, and kills the group and every process
// carrying the tag. A CLI that ignores its stdin and SIGTERM is killed all
// the same. Kill, or a Close(CloseImmediate), ends a graceful Close's wait.
// Close returns once every process that carried the tag when it was called
// has exited, not only been killed (at most tagKillTimeout more): a
// large CLI tears itself down for a while after SIGKILL, and a plugin that
// exits meanwhile would leave it for the host to find.
func (p *Process) Close(ctx context.Context, mode sdk.CloseMode) sdk.ExitInfo {
	w := p.tag.watch()
	defer w.WaitAll(tagKillTimeout)
	p.CloseStdin()
	if mode == sdk.CloseGraceful {
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-p.hurry:
		}
	} else {
		p.mu.Lock()
		if !p.hurryShut {
			p.hurryShut = true
			close(p.hurry)
		}
		p.mu.Unlock()
	}
	select {
	case <-p.done:
	default:
		_ = p.Signal(syscall.SIGTERM)
		grace := time.NewTimer(p.cfg.Grace)
		select {
		case <-p.done:
		case <-grace.C:
		}
		grace.Stop()
		p.Kill()
		<-p.done
	}
	return p.ExitInfo()
}

// Done is closed once the process has exited, everything it left behind
// has been killed, and it has been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for Done and returns nil when the process exited with status
// 0, else an error saying how it ended (Status).
func (p *Process) Wait() error {
	<-p.done
	if st := p.state; st != nil && st.Success() {
		return nil
	}
	return errors.New(p.Status())
}

// ExitInfo says how the process ended, for an Exited event (the caller
// sets Reason): its exit code, or the signal that killed it. It is the
// zero value until Done is closed.
func (p *Process) ExitInfo() sdk.ExitInfo {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st == nil {
		return sdk.ExitInfo{}
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return sdk.ExitInfo{Signal: exitSignalName(ws.Signal())}
	}
	return sdk.ExitInfo{ExitCode: sdk.IntPtr(st.ExitCode())}
}

// Status says how the process ended, for people: "exit status 3",
// "killed by signal SIGKILL", or "running" before Done is closed.
func (p *Process) Status() string {
	return DescribeExit(p.ExitInfo())
}

// DescribeExit says how a process ended, for people: "exit status 3",
// "killed by signal SIGKILL", or "running" for the zero ExitInfo.
func DescribeExit(info sdk.ExitInfo) string {
	switch {
	case info.Signal != "":
		return "killed by signal " + info.Signal
	case info.ExitCode != nil:
		return fmt.Sprintf("exit status %d", *info.ExitCode)
	}
	return "running"
}

func exitSignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return sig.String()
}

// reap waits for the leader to exit, kills what is left of its group
// while the leader is still an unreaped zombie (so its pid, the group id,
// cannot have been reused), reaps it, then kills whatever still carries
// the tag.
func (p *Process) reap() {
	reaped := !waitUnreaped(p.pid)
	if reaped {
		_ = p.cmd.Wait()
	}
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // ESRCH: nothing left
	p.exited = true
	p.mu.Unlock()
	if !reaped {
		_ = p.cmd.Wait()
	}
	p.tag.Kill(tagKillTimeout)
	// Everything that could hold the pipes is dead, so they close as soon
	// as the kernel is done; the deadlines only matter for a process that
	// dropped the tag.
	_ = p.output.SetReadDeadline(time.Now().Add(drainGrace))
	if p.stdin != nil {
		_ = p.stdin.SetWriteDeadline(time.Now())
	}
	if p.stderr != nil {
		_ = p.stderr.SetReadDeadline(time.Now().Add(drainGrace))
		<-p.stderrDone
		_ = p.stderr.Close()
	}
	p.CloseStdin()
	p.mu.Lock()
	p.state = p.cmd.ProcessState
	p.mu.Unlock()
	close(p.done)
}

// copyStderr copies stderr to cfg.Stderr until it ends (reap bounds it).
func (p *Process) copyStderr() {
	defer close(p.stderrDone)
	buf := make([]byte, 32<<10)
	for {
		n, err := p.stderr.Read(buf)
		if n > 0 {
			_, _ = p.cfg.Stderr.Write(buf[:n]) // best effort: a full disk must not stop the CLI
		}
		if err != nil {
			return
		}
	}
}
