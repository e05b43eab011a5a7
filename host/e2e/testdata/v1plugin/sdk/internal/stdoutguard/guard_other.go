//go:build !unix

package stdoutguard

import "os"

// Stdout returns the process's standard output; without unix descriptors
// there is no guard.
func Stdout() *os.File { return os.Stdout }
