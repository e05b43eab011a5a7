package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
)

// adoptedTurn is what an agent's loop says (an event) when it adopts the
// turn its previous process left running.
const adoptedTurn = "adopted the turn the previous worker process left running"

// BenchmarkUpgradeGap: one `tthost serve` host (reattach window 60 s)
// with N agents, each in a long turn (its CLI blocks on a FIFO the
// benchmark opens at the end). Each iteration restarts the host in place
// with SIGUSR2, what `tthost serve --upgrade` sends, and measures from the
// signal: until the new process logs "serving" (registered-), and until
// every agent's loop in it has adopted its running turn (gap-: the time
// the agents had no host). It counts the turns the restart interrupted:
// any agent event in the iteration other than the adoption that reports
// a turn ending, an interruption or a re-delivery (interrupted-turns), and,
// once the gate opens after the last iteration, CLI runs beyond the N
// (extra-cli-runs). Both goals are 0. The same turns are adopted again in
// every iteration.
func BenchmarkUpgradeGap(b *testing.B) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) { upgradeGap(b, n) })
	}
}

func upgradeGap(b *testing.B, n int) {
	t := startServeTown(b, func(cfg *config.Config) { cfg.TTHost.ReattachWindowSecs = 60 })
	// The bench CLI, then a wait for one line on the gate FIFO.
	gate := filepath.Join(t.root, "gate.fifo")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(t.root)
	if err != nil {
		b.Fatal(err)
	}
	bench := cfg.AgentCLIs["bench"]
	bench.Command += "; read line < " + gate
	cfg.AgentCLIs["bench"] = bench
	if err := cfg.Save(filepath.Join(t.root, config.FileName)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	h := t.startHost("up", n+10, 15*time.Second)
	for i := range n {
		t.newAgent(ctx, fmt.Sprintf("long%d", i+1))
	}
	t.waitServedBy(ctx, t.agents, h.id, 60*time.Second)
	first := make([]string, n)
	for i, a := range t.agents {
		first[i] = t.lastEvent(ctx, a)
		t.send(ctx, a)
	}
	for range n {
		t.nextStart()
	}
	t.waitState(ctx, t.agents, town.StateWorking)
	starts := n

	var gap, registered samples
	interrupted := 0
	for b.Loop() {
		after := make([]string, n)
		for i, a := range t.agents {
			after[i] = t.lastEvent(ctx, a)
		}
		mark := h.out.Len()
		type adoption struct {
			at  time.Time
			err error
		}
		adopted := make(chan adoption, n)
		var wg sync.WaitGroup
		followCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		for i, a := range t.agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, err := t.followUntilAdopted(followCtx, a, after[i])
				adopted <- adoption{at, err}
			}()
		}
		signalled := time.Now()
		if err := syscall.Kill(h.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
			b.Fatal(err)
		}
		servingAt := make(chan time.Time, 1)
		go func() {
			if h.out.WaitAfter(mark, "serving", 60*time.Second) {
				servingAt <- time.Now()
			}
			close(servingAt)
		}()
		var last time.Time
		for range n {
			r := <-adopted
			if r.err != nil {
				cancel()
				b.Fatalf("%v\nhost log:\n%s", r.err, h.out.String())
			}
			if r.at.After(last) {
				last = r.at
			}
		}
		wg.Wait()
		cancel()
		at, ok := <-servingAt
		if !ok {
			b.Fatalf("the restarted host did not log serving:\n%s", h.out.String()[mark:])
		}
		gap = append(gap, last.Sub(signalled))
		registered = append(registered, at.Sub(signalled))
		for i, a := range t.agents {
			if t.endedTurn(ctx, a, after[i]) {
				interrupted++
			}
		}
		starts += drain(t.started)
	}
	if strings.Count(h.out.String(), "re-executing") != b.N {
		b.Errorf("the host re-executed itself %d times in %d iterations", strings.Count(h.out.String(), "re-executing"), b.N)
	}

	// Open the gate: every turn completes, once.
	g, err := os.OpenFile(gate, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if _, err := g.WriteString(strings.Repeat("go\n", n)); err != nil {
		b.Fatal(err)
	}
	for i, a := range t.agents {
		t.waitTurnCompleted(ctx, a, first[i])
	}
	t.waitIdle(ctx, t.agents)
	starts += drain(t.started)
	completed := 0
	for i, a := range t.agents {
		completed += t.countEvents(ctx, a, first[i], func(ev *town.TownEvent) bool { return ev.Type == town.EventAgentTurnCompleted })
	}
	if completed != n {
		b.Errorf("%d turn completions for %d turns", completed, n)
	}
	b.Logf("%d sessions, %d restarts in place: gap (signal → every turn adopted) %v; registered %v",
		n, b.N, gap, registered)
	gap.report(b, "gap-")
	registered.report(b, "registered-")
	b.ReportMetric(float64(interrupted), "interrupted-turns")
	b.ReportMetric(float64(starts-n), "extra-cli-runs")
}

// followUntilAdopted follows a's events after the id after until its loop
// says it adopted its running turn, and returns when that was seen.
func (t *serveTown) followUntilAdopted(ctx context.Context, a *town.Agent, after string) (time.Time, error) {
	stop := errors.New("found")
	var at time.Time
	err := t.store.FollowEvents(ctx, t.store.Keys().EventsAgent(a.ID), after, func(en town.EventEntry) error {
		if en.Event != nil && strings.Contains(en.Event.Message, adoptedTurn) {
			at = time.Now()
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		return at, fmt.Errorf("%s: its turn was not adopted: %v", a.Name, err)
	}
	return at, nil
}

// countEvents counts a's events after the id after that match.
func (t *serveTown) countEvents(ctx context.Context, a *town.Agent, after string, match func(*town.TownEvent) bool) int {
	t.b.Helper()
	entries, err := t.store.ReadEvents(ctx, t.store.Keys().EventsAgent(a.ID), after, 0)
	if err != nil {
		t.b.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Event != nil && match(en.Event) {
			n++
		}
	}
	return n
}

// endedTurn reports whether a's events after the id after show its turn
// ended or was interrupted (none should while the gate is closed).
func (t *serveTown) endedTurn(ctx context.Context, a *town.Agent, after string) bool {
	return t.countEvents(ctx, a, after, func(ev *town.TownEvent) bool {
		switch ev.Type {
		case town.EventAgentTurnCompleted, town.EventAgentRuntimeError, town.EventAgentInterrupted, town.EventAgentFailed:
			return true
		}
		return strings.Contains(ev.Message, "interrupted") || strings.Contains(ev.Message, "delivered again")
	}) > 0
}

// drain counts and empties what the channel holds now.
func drain(c chan time.Time) int {
	n := 0
	for {
		select {
		case <-c:
			n++
		default:
			return n
		}
	}
}
