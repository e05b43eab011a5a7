// Command fakeloop stands in for tthost in spawn's tests: spawn starts it
// as the agent-loop worker. It records how it was started (arguments,
// session, stdin, working directory) as JSON in $FAKELOOP_RECORD, writes a
// line to stdout and one to stderr (which spawn sends to the agent's log),
// and exits.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Record is what the test reads back.
type Record struct {
	Args  []string `json:"args"`
	Pid   int      `json:"pid"`
	Sid   int      `json:"sid"`
	Pgid  int      `json:"pgid"`
	Stdin string   `json:"stdin"`
	Dir   string   `json:"dir"`
}

func main() {
	path := os.Getenv("FAKELOOP_RECORD")
	if path == "" {
		fmt.Fprintln(os.Stderr, "fakeloop: FAKELOOP_RECORD is not set")
		os.Exit(2)
	}
	sid, _ := unix.Getsid(0)
	stdin, _ := os.Readlink("/proc/self/fd/0")
	dir, _ := os.Getwd()
	rec := Record{Args: os.Args[1:], Pid: os.Getpid(), Sid: sid, Pgid: unix.Getpgrp(), Stdin: stdin, Dir: dir}
	b, err := json.Marshal(rec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeloop:", err)
		os.Exit(1)
	}
	// Written whole, then renamed: the test never reads half a record.
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fakeloop:", err)
		os.Exit(1)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		fmt.Fprintln(os.Stderr, "fakeloop:", err)
		os.Exit(1)
	}
	fmt.Println("fakeloop: stdout line")
	fmt.Fprintln(os.Stderr, "fakeloop: stderr line")
}
