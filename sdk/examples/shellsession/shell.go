package main

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/plugin"
)

const (
	// reapKillTimeout bounds killing what the shell left behind.
	reapKillTimeout = 2 * time.Second
	// drainGrace bounds reading the output once everything the shell
	// started is dead. Only a process that dropped the tag (it cleared its
	// environment) can still hold the pipe then; we stop waiting for it.
	drainGrace = time.Second
)

// shell is a session's shell process and our ends of its pipes.
type shell struct {
	cmd    *exec.Cmd
	pid    int               // also its process group id
	tag    plugin.ProcessTag // marks every process the shell starts
	stdin  *os.File          // write end
	output *os.File          // read end of its stdout and stderr
	// gone is closed once the shell exited, everything it started was
	// killed, and it was reaped.
	gone chan struct{}

	mu     sync.Mutex
	reaped bool // its pid, the group id, may belong to a stranger now
}

// startShell runs command (the CLI's configured command line) through
// `sh -c "exec COMMAND"`, so a command line with arguments works, in a
// process group of its own: a signal to the group reaches the shell and
// every command it runs in the foreground.
func startShell(s settings) (*shell, error) {
	cmd := exec.Command("sh", "-c", "exec "+s.command)
	cmd.Dir = s.workdir
	// The tag follows every process the shell starts, including those
	// that move to a session or group of their own, which the group
	// signal does not reach. Killing by tag at the end is what guarantees
	// that nothing outlives the session.
	tag := plugin.NewProcessTag()
	cmd.Env = append(append([]string(nil), s.env...), tag.Env())
	// Pdeathsig takes the shell down with a plugin that dies without
	// closing its sessions (it fires when the forking thread ends; Go
	// keeps its threads, so in practice when the plugin does).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = inR.Close(), inW.Close()
		return nil, err
	}
	// One pipe for stdout and stderr keeps their order as written.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	err = cmd.Start()
	// The shell has its own copies; ours must go so that EOF and EPIPE
	// arrive when the shell's ends close.
	_, _ = inR.Close(), outW.Close()
	if err != nil {
		_, _ = inW.Close(), outR.Close()
		return nil, err
	}
	sh := &shell{cmd: cmd, pid: cmd.Process.Pid, tag: tag, stdin: inW, output: outR, gone: make(chan struct{})}
	go sh.wait()
	return sh, nil
}

// wait reaps the shell, then kills everything it left (background jobs,
// daemons), found by the tag: the group may be empty, and its id reused.
func (sh *shell) wait() {
	_ = sh.cmd.Wait()
	sh.mu.Lock()
	sh.reaped = true
	sh.mu.Unlock()
	sh.tag.Kill(reapKillTimeout)
	_ = sh.output.SetReadDeadline(time.Now().Add(drainGrace))
	_ = sh.stdin.SetWriteDeadline(time.Now().Add(drainGrace))
	close(sh.gone)
}

// signal sends sig to the shell's process group while the shell is
// unreaped, so the group id is still ours. (A shell reaped an instant
// before the flag is set leaves a window of microseconds; waitid with
// WNOWAIT closes it, see plugins/oneshot, at the price of x/sys/unix.)
func (sh *shell) signal(sig syscall.Signal) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.reaped {
		_ = syscall.Kill(-sh.pid, sig)
	}
}

// kill ends the shell and its foreground commands at once.
func (sh *shell) kill() { sh.signal(syscall.SIGKILL) }

// killChildren kills every process the shell started, but not the shell:
// what a cancel does to a command that ignores SIGINT.
func (sh *shell) killChildren() {
	for _, pid := range sh.tag.Alive() {
		if pid != sh.pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// exitInfo describes how the shell ended; call it once gone is closed.
func (sh *shell) exitInfo() (code *int, signal, desc string) {
	ps := sh.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return nil, ws.Signal().String(), "killed by signal: " + ws.Signal().String()
	}
	c := ps.ExitCode()
	return &c, "", fmt.Sprintf("exit status %d", c)
}
