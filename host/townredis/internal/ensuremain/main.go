// Command ensuremain calls townredis.Ensure for a town directory and prints
// what it got, so the tests can race two processes for one town.
//
// Usage: ensuremain TOWN_DIR MODE [EMBEDDED_EXECUTABLE]
// Output: "KIND PID STARTED".
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/townredis"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: ensuremain TOWN_DIR MODE [EMBEDDED_EXECUTABLE]")
		os.Exit(2)
	}
	town, mode := os.Args[1], os.Args[2]
	opts := townredis.EnsureOptions{RedisServer: mode}
	if len(os.Args) > 3 {
		opts.Executable = os.Args[3]
	}
	ep, err := townredis.Resolve(config.New("race"), town, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := townredis.Ensure(ctx, ep, town, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.Kind, s.Pid, s.Started)
}
