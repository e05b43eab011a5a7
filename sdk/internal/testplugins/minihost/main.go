// Command minihost is a tiny host for the host-death test: it launches the
// plugin given as argument (path and hex SHA-256), opens a session, waits
// for it to be ready, prints "PLUGIN_PID <pid>", and waits to be killed.
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: minihost PLUGIN SHA256HEX")
		os.Exit(2)
	}
	sum, err := hex.DecodeString(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "checksum:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := hclog.New(&hclog.LoggerOptions{Name: "minihost", Output: os.Stderr, Level: hclog.Info})
	p, err := client.Launch(ctx, client.Config{Path: os.Args[1], Checksum: sum, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "echo"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for ev := range s.Events() {
		if ev.Kind == sdk.EventSessionReady {
			break
		}
	}
	fmt.Printf("PLUGIN_PID %d\n", p.Pid())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	_ = p.Stop(5 * time.Second)
}
