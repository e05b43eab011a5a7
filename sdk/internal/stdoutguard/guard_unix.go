//go:build unix

// Package stdoutguard keeps stray writes to stdout away from the go-plugin
// handshake. The host reads the plugin's stdout for exactly one handshake
// line; a library that prints anything first breaks the start. Importing
// this package (the sdk does) moves fd 1 aside at init: the real stdout is
// kept on a private close-on-exec descriptor for the handshake, and fd 1
// becomes a copy of stderr, which the host logs.
//
// The guard acts only in a plugin process, or when the binary runs with
// --describe, whose JSON must stay clean. Every binary that imports the
// sdk links this package, the tthost host included (it uses the sdk's
// types), and a host's stdout must stay where it is: `tthost task list
// --json` run by an agent inside a turn prints its JSON there.
//
// A plugin process is told apart by two things together: the host's
// handshake cookie (go-plugin sets it for the plugin), and a parent whose
// pid is the one the host wrote in HostPIDEnv. The cookie alone is not
// enough: a CLI the plugin starts inherits it when the backend passes its
// environment on unfiltered (plugin.ChildEnv strips it, but a backend built
// with an older SDK or by hand may not), and inherited variables cannot
// tell a child from its parent. A parent pid can: a child's parent is the
// plugin, not the host. A host that predates HostPIDEnv does not set it;
// the cookie then decides alone, as before. (Arming the guard in
// plugin.Serve instead would come too late for prints in the plugin's init,
// and keeping the host from linking it would split the sdk's types from
// Serve for no gain.)
//
// Go initialises a package's imports before the package itself, so prints
// in the plugin's main package (init or main) are caught. A third-party
// package that prints in its own init can still run first; the host then
// reports the offending text.
package stdoutguard

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CookieKey is the handshake cookie's variable (wire.Handshake; a test
// keeps the two equal). It is repeated here so that this package imports
// nothing that could print before it runs.
const CookieKey = "TTHOST_BACKEND_PLUGIN"

// HostPIDEnv is wire.HostPIDEnv, repeated for the same reason.
const HostPIDEnv = "TTHOST_PLUGIN_HOST_PID"

var stdout *os.File

func init() {
	if !launchedByHost(os.Getenv, os.Getppid()) && !(len(os.Args) == 2 && os.Args[1] == "--describe") {
		return
	}
	// F_DUPFD_CLOEXEC so that no child of the plugin inherits the host's
	// stdout pipe (it would keep the pipe open after the plugin died).
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return // fd 1 is closed: there is nothing to protect
	}
	if err := unix.Dup2(2, 1); err != nil {
		_ = unix.Close(fd)
		return
	}
	stdout = os.NewFile(uintptr(fd), "/dev/stdout")
}

// launchedByHost reports whether the process is a plugin that a host
// launched: the cookie is set and, when the host says who it is, the
// process's parent is that host.
func launchedByHost(getenv func(string) string, ppid int) bool {
	if getenv(CookieKey) == "" {
		return false
	}
	host := getenv(HostPIDEnv)
	return host == "" || host == strconv.Itoa(ppid)
}

// Stdout returns the process's real standard output: where the handshake
// line and --describe output go.
func Stdout() *os.File {
	if stdout != nil {
		return stdout
	}
	return os.Stdout
}
