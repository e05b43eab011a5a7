//go:build unix

// Package stdoutguard keeps stray writes to stdout away from the go-plugin
// handshake. The host reads the plugin's stdout for exactly one handshake
// line; a library that prints anything first breaks the start. Importing
// this package (the sdk does) moves fd 1 aside at init: the real stdout is
// kept on a private close-on-exec descriptor for the handshake, and fd 1
// becomes a copy of stderr, which the host logs.
//
// The guard acts only in a plugin process: when the host's handshake cookie
// is in the environment (go-plugin sets it for the child only), or when the
// binary runs with --describe, whose JSON must stay clean. A host imports
// the sdk too, and its own stdout must stay where it is.
//
// Go initialises a package's imports before the package itself, so prints
// in the plugin's main package (init or main) are caught. A third-party
// package that prints in its own init can still run first; the host then
// reports the offending text.
package stdoutguard

import (
	"os"

	"golang.org/x/sys/unix"
)

// CookieKey is the handshake cookie's variable (wire.Handshake; a test
// keeps the two equal). It is repeated here so that this package imports
// nothing that could print before it runs.
const CookieKey = "TTHOST_BACKEND_PLUGIN"

var stdout *os.File

func init() {
	if os.Getenv(CookieKey) == "" && !(len(os.Args) == 2 && os.Args[1] == "--describe") {
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

// Stdout returns the process's real standard output: where the handshake
// line and --describe output go.
func Stdout() *os.File {
	if stdout != nil {
		return stdout
	}
	return os.Stdout
}
