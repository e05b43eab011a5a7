// Command garbage is not a tthost plugin: it prints a line to stdout where
// the handshake belongs, starts a child in its own process group, and
// sleeps. The host must refuse it clearly and kill the whole group.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

func main() {
	child := exec.Command("sleep", "300")
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start child:", err)
	}
	fmt.Fprintln(os.Stderr, "garbage: about to print junk")
	fmt.Println("garbage: this is not a handshake")
	time.Sleep(time.Hour) // hold still until the host kills the group
}
