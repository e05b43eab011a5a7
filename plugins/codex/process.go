package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/plugin"

	"golang.org/x/sys/unix"
)

const (
	// drainGrace bounds reading the app-server's output once its process
	// group is dead. Only a process that left the group (setsid) can still
	// hold the pipes then; we stop waiting for it.
	drainGrace = time.Second
	// stderrTailBytes and stderrTailLines bound the app-server's last words
	// quoted in a start or exit error.
	stderrTailBytes = 4 << 10
	stderrTailLines = 10
)

// appServer is a running app-server process (its own process group) and our
// ends of its pipes.
type appServer struct {
	tag    plugin.ProcessTag // marks every process the app-server starts
	cmd    *exec.Cmd
	pid    int
	stdin  *os.File // write end; closing it asks the app-server to exit
	stdout *os.File // read end
	stderr *stderrTail
	// exited is closed once the process has exited, what was left of its
	// group has been killed, and it has been reaped.
	exited chan struct{}

	mu         sync.Mutex
	leaderGone bool // the leader exited: its group may no longer be signalled
}

// startAppServer starts the session's app-server in a process group of its
// own, so that closing the session reaches every process codex starts (the
// npm launcher runs the native binary as a child: killing only the
// launcher would orphan it).
func startAppServer(s settings) (*appServer, error) {
	if s.codexHome != "" {
		// Codex refuses a CODEX_HOME that does not exist.
		if err := os.MkdirAll(s.codexHome, 0o700); err != nil {
			return nil, fmt.Errorf("codex_home: %w", err)
		}
	}
	var logFile *os.File
	if s.logPath != "" {
		if err := os.MkdirAll(filepath.Dir(s.logPath), 0o755); err != nil {
			return nil, fmt.Errorf("log dir: %w", err)
		}
		f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		logFile = f
	}
	p, err := spawn(s, logFile)
	if err != nil && logFile != nil {
		_ = logFile.Close()
	}
	return p, err
}

func spawn(s settings, logFile *os.File) (*appServer, error) {
	cmd := exec.Command(s.launch.argv[0], s.launch.argv[1:]...)
	cmd.Dir = s.workdir
	// The tag follows codex's tool commands into the sessions codex gives
	// them (setsid), where the group kill below cannot reach.
	tag := plugin.NewProcessTag()
	cmd.Env = append(append([]string(nil), s.env...), tag.Env())
	// Pdeathsig takes the app-server down with a plugin that dies without
	// closing its sessions (it fires when the forking thread exits; Go
	// keeps threads alive, so in practice that is the process).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	var ours []*os.File   // our ends, closed if the start fails
	var theirs []*os.File // the child's ends, closed once it has them
	var pipeErr error
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		pipeErr = errors.Join(pipeErr, err)
		return r, w
	}
	inR, inW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	ours, theirs = []*os.File{inW, outR, errR}, []*os.File{inR, outW, errW}
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			if f != nil {
				_ = f.Close()
			}
		}
	}
	if pipeErr != nil {
		closeAll(ours)
		closeAll(theirs)
		return nil, pipeErr
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	err := cmd.Start()
	// The child has its own copies; ours must go so that EOF and EPIPE
	// arrive when the child's ends close.
	closeAll(theirs)
	if err != nil {
		closeAll(ours)
		return nil, err
	}
	p := &appServer{
		tag:    tag,
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		stdin:  inW,
		stdout: outR,
		stderr: newStderrTail(errR, logFile),
		exited: make(chan struct{}),
	}
	go p.wait()
	return p, nil
}

// wait waits for the leader to exit, kills what is left of its group while
// the leader is still an unreaped zombie (so its pid, the group id, cannot
// have been reused), then reaps it.
func (p *appServer) wait() {
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // ESRCH: nothing left
	p.leaderGone = true
	p.mu.Unlock()
	_ = p.cmd.Wait()
	// Tool commands codex started in sessions of their own, and login-shell
	// stragglers (pyenv rehash), are not in the group.
	p.tag.Kill(drainGrace)
	// The group is dead, so the pipes close as soon as the kernel is done
	// with it; the deadlines only matter when an escaped process holds them.
	_ = p.stdout.SetReadDeadline(time.Now().Add(drainGrace))
	p.stderr.drain()
	close(p.exited)
}

// kill stops the whole process group at once.
func (p *appServer) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leaderGone {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// exitInfo describes how the app-server ended; call after exited closed.
func (p *appServer) exitInfo() (code *int, signal, desc string) {
	ps := p.cmd.ProcessState
	if ps == nil {
		return nil, "", "unknown exit"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := ws.Signal().String()
		return nil, sig, "killed by signal " + unix.SignalName(ws.Signal())
	}
	c := ps.ExitCode()
	return &c, "", fmt.Sprintf("exit status %d", c)
}

// stderrTail copies the app-server's stderr to the session log (when there
// is one) and keeps its end for error messages.
type stderrTail struct {
	r    *os.File
	log  *os.File
	done chan struct{}

	mu   sync.Mutex
	tail []byte
}

func newStderrTail(r, log *os.File) *stderrTail {
	t := &stderrTail{r: r, log: log, done: make(chan struct{})}
	go t.copy()
	return t
}

func (t *stderrTail) copy() {
	defer close(t.done)
	defer t.r.Close()
	if t.log != nil {
		defer t.log.Close()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := t.r.Read(buf)
		if n > 0 {
			if t.log != nil {
				_, _ = t.log.Write(buf[:n]) // best effort: a full disk must not stop codex
			}
			t.mu.Lock()
			t.tail = append(t.tail, buf[:n]...)
			if len(t.tail) > 2*stderrTailBytes {
				t.tail = append(t.tail[:0], t.tail[len(t.tail)-stderrTailBytes:]...)
			}
			t.mu.Unlock()
		}
		if err != nil {
			return // EOF, or the drain deadline: an escaped process holds the pipe
		}
	}
}

// drain waits (bounded) until stderr has been read to its end.
func (t *stderrTail) drain() {
	_ = t.r.SetReadDeadline(time.Now().Add(drainGrace))
	<-t.done
}

// lastLines returns the last few lines of stderr, or "".
func (t *stderrTail) lastLines() string {
	t.mu.Lock()
	b := bytes.TrimSpace(t.tail)
	if len(b) > stderrTailBytes {
		b = b[len(b)-stderrTailBytes:]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	t.mu.Unlock()
	lines := strings.Split(s, "\n")
	if len(lines) > stderrTailLines {
		lines = lines[len(lines)-stderrTailLines:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
