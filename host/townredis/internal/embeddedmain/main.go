// Command embeddedmain runs the embedded Redis the way tthost's hidden
// subcommand does, so the townredis tests can start it as a real detached
// process through Ensure.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tthost/tthost/host/townredis"
)

func main() {
	sock, pidFile, err := townredis.ParseEmbeddedArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "embeddedmain:", err)
		os.Exit(2)
	}
	signal.Ignore(syscall.SIGHUP) // as tthost's serve-embedded and redis-server do
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := townredis.ServeEmbedded(ctx, sock, pidFile); err != nil {
		fmt.Fprintln(os.Stderr, "embeddedmain:", err)
		os.Exit(1)
	}
}
