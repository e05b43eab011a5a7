// Command mycli stands in for the CLI the tutorial's backend drives: a
// line-oriented REPL, as many coding CLIs have. It says ">>> ready" once
// started; then it reads one prompt per line and answers it with lines of
// output, followed by a line that ends the answer: ">>> ok", ">>> error
// REASON" or, when Ctrl-C (SIGINT) interrupted it, ">>> interrupted". It
// exits at the end of its input.
//
// It answers like the conformance suite's stand-in: a prompt with
// CONFORMANCE_SLEEP thinks for an hour (until interrupted), one with
// CONFORMANCE_STEER for 3 seconds (long enough to steer a line into its
// turn, which mycli reads once it has answered), one with CONFORMANCE_FAIL
// fails, and any other is echoed back.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	in := bufio.NewReader(os.Stdin)
	fmt.Println(">>> ready")
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		select {
		case <-interrupt: // a Ctrl-C while idle interrupts nothing
		default:
		}
		switch {
		case strings.Contains(line, "CONFORMANCE_FAIL"):
			fmt.Println("mycli: failing as asked")
			fmt.Println(">>> error the prompt asked to fail")
		case strings.Contains(line, "CONFORMANCE_SLEEP"):
			think(interrupt, time.Hour)
		case strings.Contains(line, "CONFORMANCE_STEER"):
			think(interrupt, 3*time.Second)
		default:
			fmt.Println(line)
			fmt.Println(">>> ok")
		}
	}
}

// think prints that it is busy, then ends its answer after d, or at once
// when interrupted.
func think(interrupt <-chan os.Signal, d time.Duration) {
	fmt.Println("mycli: thinking hard")
	select {
	case <-interrupt:
		fmt.Println(">>> interrupted")
	case <-time.After(d):
		fmt.Println(">>> ok")
	}
}
