package cli

import (
	"io"
	"os"
)

// IOStreams is where a command reads and writes. Tests give commands
// buffers; the binary gives them the process's stdio.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// System returns the process's stdio.
func System() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}
