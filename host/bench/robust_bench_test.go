package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
)

// startFIFO makes a FIFO the benchmark's CLI writes a line to, and returns
// its path and the arrival time of each line.
func startFIFO(b *testing.B) (string, <-chan time.Time) {
	path, lines := fifoLines(b)
	out := make(chan time.Time, 64)
	go func() {
		for l := range lines {
			out <- l.at
		}
	}()
	return path, out
}

func waitStart(b *testing.B, started <-chan time.Time, what string) time.Time {
	b.Helper()
	select {
	case at := <-started:
		return at
	case <-time.After(60 * time.Second):
		b.Fatalf("%s: the CLI did not start within 60s", what)
	}
	return time.Time{}
}

// BenchmarkRedisRecovery: Redis is killed (-9) under an idle agent and
// restarted on the same socket, with its append-only file, as soon as the
// worker's log says it saw Redis go; a message is sent as soon as Redis
// accepts connections. Measured: Redis ready → the message's CLI started.
// The worker rides the outage out (before issue 7 it exited after about
// 1.5 s); what is left is its reconnect backoff (50 ms doubling to 1 s,
// with jitter).
func BenchmarkRedisRecovery(b *testing.B) {
	fifo, started := startFIFO(b)
	t := startTownWith(b, townOpts{command: fmt.Sprintf("echo started > %s; cat >/dev/null", fifo), restartable: true})
	ctx := context.Background()
	last := t.roundTripFIFO(ctx, started, "")
	var s samples
	for b.Loop() {
		t.waitIdle(ctx)
		mark := t.loops[0].out.Len()
		t.redis.Kill9()
		if !t.loops[0].out.WaitAfter(mark, "Redis is unreachable", 30*time.Second) {
			b.Fatal("the worker did not report the outage within 30s")
		}
		t.redis.Restart()
		ready := time.Now()
		if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, "after the outage")); err != nil {
			b.Fatal(err)
		}
		at := waitStart(b, started, "after a Redis restart")
		s = append(s, at.Sub(ready))
		last = t.waitEvent(town.EventAgentTurnCompleted, last)
	}
	s.report(b, "")
}

// roundTripFIFO sends a message and waits for its CLI start and its turn's
// completion.
func (t *benchTown) roundTripFIFO(ctx context.Context, started <-chan time.Time, after string) string {
	t.b.Helper()
	if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, "warm up")); err != nil {
		t.b.Fatal(err)
	}
	waitStart(t.b, started, "warm up")
	return t.waitEvent(town.EventAgentTurnCompleted, after)
}

// Reaction to Tinytown's writers, which send no wake signal: `tt send`
// (RPUSH to the inbox), `tt stop` (SETEX of the stop flag) and `tt send
// --urgent` (LPUSH to the urgent list). Each is measured on the keyspace
// notification path (tthost's default; the test redis-server starts without
// notifications and the worker enables them) and on the polling path
// (`notifications = "off"`: the safety poll while idle, turn_poll_ms while a
// turn runs). Before issue 7 every one of them waited for the 5 s safety
// poll.

// ttPaths are the two ways a worker learns of tt's writes.
var ttPaths = []struct {
	name string
	off  bool
}{{"notify", false}, {"poll", true}}

func ttPathConfig(off bool) func(*config.Config) {
	return func(c *config.Config) {
		if off {
			c.TTHost.Notifications = config.NotificationsOff
		}
	}
}

// ttPush is a raw list write as tt does it: no wake signal.
func (t *benchTown) ttPush(ctx context.Context, key string, front bool, msg *town.Message) {
	t.b.Helper()
	raw, err := msg.Marshal()
	if err != nil {
		t.b.Fatal(err)
	}
	if front {
		err = t.redis.Client.LPush(ctx, key, raw).Err()
	} else {
		err = t.redis.Client.RPush(ctx, key, raw).Err()
	}
	if err != nil {
		t.b.Fatal(err)
	}
}

// BenchmarkTTSendReaction: an idle agent; `tt send` → its CLI started.
func BenchmarkTTSendReaction(b *testing.B) {
	for _, p := range ttPaths {
		b.Run(p.name, func(b *testing.B) {
			fifo, started := startFIFO(b)
			t := startTownWith(b, townOpts{command: fmt.Sprintf("echo started > %s; cat >/dev/null", fifo), configure: ttPathConfig(p.off)})
			ctx := context.Background()
			last := t.roundTripFIFO(ctx, started, "")
			var s samples
			for b.Loop() {
				t.waitIdle(ctx)
				sent := time.Now()
				t.ttPush(ctx, t.store.Keys().Inbox(t.agent.ID), false, town.NewTask(town.SupervisorID, t.agent.ID, "from tt"))
				s = append(s, waitStart(b, started, "tt send").Sub(sent))
				last = t.waitEvent(town.EventAgentTurnCompleted, last)
			}
			s.report(b, "")
		})
	}
}

// BenchmarkTTStopReaction: a running one-shot turn; `tt stop` (the stop
// flag, no wake signal) → the CLI receives SIGTERM. Each iteration starts a
// new worker, since a stop ends the worker.
func BenchmarkTTStopReaction(b *testing.B) {
	for _, p := range ttPaths {
		b.Run(p.name, func(b *testing.B) {
			fifo, lines := startFIFO(b)
			cli := fmt.Sprintf("trap 'echo stopped > %s; exit 0' TERM; echo started > %s; cat >/dev/null; sleep 300 & wait", fifo, fifo)
			t := startTownWith(b, townOpts{command: cli, configure: ttPathConfig(p.off)})
			ctx := context.Background()
			loop := t.loops[0]
			var s samples
			for b.Loop() {
				if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, "work until stopped")); err != nil {
					b.Fatal(err)
				}
				waitStart(b, lines, "the turn")
				sent := time.Now()
				if err := t.redis.Client.SetEx(ctx, t.store.Keys().Stop(t.agent.ID), "1", time.Hour).Err(); err != nil {
					b.Fatal(err)
				}
				s = append(s, waitStart(b, lines, "tt stop").Sub(sent))
				select {
				case <-loop.done:
				case <-time.After(30 * time.Second):
					b.Fatal("the worker did not exit after the stop")
				}
				// The interrupted task went back to the inbox: drop it, and
				// serve the agent with a new worker for the next iteration.
				if err := t.redis.Client.Del(ctx, t.store.Keys().Inbox(t.agent.ID)).Err(); err != nil {
					b.Fatal(err)
				}
				loop = t.startLoop(t.agent)
			}
			s.report(b, "")
		})
	}
}

// BenchmarkTTSteerReaction: a running persistent turn (the Codex backend
// against the fake app-server); `tt send --urgent` (LPUSH to the urgent
// list, no wake signal) → `turn/steer` received by the app-server.
func BenchmarkTTSteerReaction(b *testing.B) {
	for _, p := range ttPaths {
		b.Run(p.name, func(b *testing.B) {
			logPath, lines := fifoLines(b)
			o := fakeCodex(b, logPath)
			inner := o.configure
			o.configure = func(c *config.Config) { inner(c); ttPathConfig(p.off)(c) }
			t := startTownWith(b, o)
			ctx := context.Background()
			if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, "LONG SLEEP_MS=600000")); err != nil {
				b.Fatal(err)
			}
			waitLine(b, lines, "turn/start", func(s string) bool { return strings.Contains(s, `"method":"turn/start"`) })
			i := 0
			var s samples
			for b.Loop() {
				i++
				marker := fmt.Sprintf("TTSTEER_%d_", i)
				sent := time.Now()
				t.ttPush(ctx, t.store.Keys().Urgent(t.agent.ID), true, town.NewQuery(town.SupervisorID, t.agent.ID, marker))
				got := waitLine(b, lines, "turn/steer", func(s string) bool {
					return strings.Contains(s, `"method":"turn/steer"`) && strings.Contains(s, marker)
				})
				s = append(s, got.at.Sub(sent))
			}
			s.report(b, "")
		})
	}
}
