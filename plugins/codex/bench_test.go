package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// deltasPerTurn is how many one-character deltas the fake streams per turn.
const deltasPerTurn = 100_000

// BenchmarkDeltaThroughput streams 100,000 item/agentMessage/delta
// notifications in one turn and measures them end to end (Send to
// TurnCompleted), reporting deltas per second and events per turn:
//
//   - backend: in process, into a counting sink. The backend emits one
//     event per delta (the SDK coalesces, not the backend), so this is the
//     cost of decoding and routing codex's stream.
//   - plugin: the real plugin binary behind the SDK and go-plugin, as the
//     host sees it. The SDK's coalescing turns 100,000 deltas into a
//     handful of events (at most one per 100 ms or 4 KiB).
func BenchmarkDeltaThroughput(b *testing.B) {
	text := "DELTAS=100000"
	b.Run("backend", func(b *testing.B) {
		procs := sdktest.TrackProcesses(b)
		st, err := validate(sdk.SessionConfig{
			CLIName: cliCodex, Command: fakeBinary(b), Workdir: b.TempDir(),
			Env: map[string]string{sdktest.MarkerEnv: procs.Marker(), "GORACE": "atexit_sleep_ms=0"},
		})
		if err != nil {
			b.Fatal(err)
		}
		sink := &countingSink{completed: make(chan sdk.TurnCompleted, 1)}
		s := openSession(st, sink, nil)
		defer s.Close(context.Background(), sdk.CloseImmediate)
		runTurns(b, s, sink.completed, text)
		b.ReportMetric(float64(sink.events.Load())/float64(b.N), "events/turn")
	})
	b.Run("plugin", func(b *testing.B) {
		procs := sdktest.TrackProcesses(b)
		path := sdktest.Build(b, "github.com/tthost/tthost/plugins/codex", "tthost-backend-codex")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := client.Launch(ctx, client.Config{
			Path: path, Checksum: sdktest.SHA256File(b, path), HostVersion: "bench",
			Env:    []string{procs.Env(), "GORACE=atexit_sleep_ms=0"},
			Logger: hclog.NewNullLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Stop(5 * time.Second)
		sess, err := p.OpenSession(ctx, sdk.SessionConfig{
			CLIName: cliCodex, Command: fakeBinary(b), Workdir: b.TempDir(),
			Env: map[string]string{sdktest.MarkerEnv: procs.Marker(), "GORACE": "atexit_sleep_ms=0"},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close(context.Background(), sdk.CloseImmediate)
		var events atomic.Int64
		completed := make(chan sdk.TurnCompleted, 1)
		go func() {
			for e := range sess.Events() {
				events.Add(1)
				if e.Kind == sdk.EventTurnCompleted {
					completed <- *e.Completed
				}
			}
		}()
		runTurns(b, sess, completed, text)
		b.ReportMetric(float64(events.Load())/float64(b.N), "events/turn")
	})
}

// runTurns runs b.N turns and reports deltas per second.
func runTurns(b *testing.B, s interface {
	Send(context.Context, sdk.Input) (sdk.Delivery, error)
}, completed <-chan sdk.TurnCompleted, text string) {
	for b.Loop() {
		if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: text}); err != nil {
			b.Fatal(err)
		}
		if c := <-completed; c.Status != sdk.StatusCompleted {
			b.Fatalf("turn %+v", c)
		}
	}
	b.ReportMetric(float64(deltasPerTurn*b.N)/b.Elapsed().Seconds(), "deltas/s")
}

// countingSink counts events and hands each TurnCompleted to the
// benchmark. The session clears its running turn in the same critical
// section as it emits TurnCompleted, so the next Send cannot see it running.
type countingSink struct {
	events    atomic.Int64
	completed chan sdk.TurnCompleted
}

func (c *countingSink) Emit(e sdk.Event) {
	c.events.Add(1)
	if e.Kind == sdk.EventTurnCompleted {
		c.completed <- *e.Completed
	}
}
