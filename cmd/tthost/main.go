// Command tthost is the tthost host: town commands, the agent-loop worker,
// and plugin management. It only builds the root command and runs it.
package main

import (
	"os"

	"github.com/tthost/tthost/host/cli"
)

func main() {
	os.Exit(cli.Main(cli.System(), os.Args[1:]))
}
