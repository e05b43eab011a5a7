package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/tthost/tthost/sdk"
)

// BenchmarkTurnOverhead measures what the backend adds to a turn: "direct"
// runs `sh -c true` with os/exec and the same plumbing a turn has (own
// process group, the prompt fed on a stdin pipe, the output read from one
// pipe); "backend" runs the same command as a turn, Send to TurnCompleted.
// The difference is the backend's overhead; the plugin's gRPC hop is
// measured by the host-level benchmark.
func BenchmarkTurnOverhead(b *testing.B) {
	const prompt = "hello\n"
	workdir := b.TempDir()

	b.Run("direct", func(b *testing.B) {
		buf := make([]byte, 32<<10)
		for b.Loop() {
			cmd := exec.Command("sh", "-c", "true")
			cmd.Dir = workdir
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			outR, outW, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			inR, inW, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			_ = outW.Close()
			_ = inR.Close()
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = io.WriteString(inW, prompt); _ = inW.Close() })
			wg.Go(func() {
				for {
					if _, err := outR.Read(buf); err != nil {
						return
					}
				}
			})
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
			_ = outR.Close()
		}
	})

	b.Run("backend", func(b *testing.B) {
		sink := &completionSink{completed: make(chan sdk.TurnCompleted, 1)}
		s, err := newBackend().OpenSession(context.Background(),
			sdk.SessionConfig{CLIName: "bench", Command: "true", Workdir: workdir}, sink)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(context.Background(), sdk.CloseImmediate)
		ctx := context.Background()
		for b.Loop() {
			if _, err := s.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: prompt}); err != nil {
				b.Fatal(err)
			}
			if c := <-sink.completed; c.Status != sdk.StatusCompleted {
				b.Fatalf("turn %+v", c)
			}
		}
	})
}

// completionSink hands each TurnCompleted to the benchmark and drops the
// rest. The session clears its running turn in the same critical section
// as it emits TurnCompleted, so the next Send cannot see it running.
type completionSink struct{ completed chan sdk.TurnCompleted }

func (c *completionSink) Emit(e sdk.Event) {
	if e.Kind == sdk.EventTurnCompleted {
		c.completed <- *e.Completed
	}
}
