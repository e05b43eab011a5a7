package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/plugins/acp/acptest"
	"github.com/tthost/tthost/plugins/claude/claudetest"
	"github.com/tthost/tthost/sdk/plugin"
	"github.com/tthost/tthost/sdk/sdktest"
)

// Per-turn cost of a real CLI served persistently vs one-shot, with the
// same CLI binary and the same offline mock model: the persistent path
// keeps one CLI process and session across turns, the one-shot fallback
// starts the CLI (Tinytown's preset, the prompt on stdin) for every turn.
// Each turn is a message sent to the agent (store.Send) and is timed to
// the first assistant delta in the agent's event stream and to the turn's
// completion; the first delta is the first with the model's text. The first turn (plugin and CLI start, for the persistent
// path) is reported apart as cold-turn-ms. Memory: VmRSS of what serves
// one session, the backend plugin and every process of the CLI, sampled
// while the CLI is in a turn (its model request held open by the mock).

// cliPath is one way of serving a CLI in a benchmark town.
type cliPath struct {
	name      string
	cli       string
	configure func(*config.Config)
}

// persistentAndOneShot are the two ways of serving cli (run as command):
// persistent (the benchmark named persistent) and the one-shot fallback.
func persistentAndOneShot(persistent, cli, command string) []cliPath {
	path := func(name string, on bool) cliPath {
		return cliPath{name: name, cli: cli, configure: func(c *config.Config) {
			c.Agent.Persistent = on
			c.AgentCLIs[cli] = config.AgentCLI{Name: cli, Command: command}
		}}
	}
	return []cliPath{path(persistent, true), path("oneshot", false)}
}

// answerMark starts the mock model's answer (acptest's and claudetest's
// DefaultScript: "echo: <first line>").
const answerMark = "echo: "

// measureMarker is the message text whose model request the mock holds
// open until memory is sampled.
const measureMarker = "MEASURE_MEMORY"

// gate holds the mock's answer to measureMarker until released.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

// newGate returns a closed-later gate; release it before the mock that
// waits on it closes (httptest waits for its handlers).
func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.ch) }) }

// BenchmarkGeminiTurn: Gemini CLI 0.61.0 through `tthost agent-loop`,
// persistent on the ACP backend (`gemini --acp`) vs one-shot (`gemini`,
// the prompt on stdin), against acptest's MockGemini.
func BenchmarkGeminiTurn(b *testing.B) {
	for _, p := range persistentAndOneShot("acp-persistent", "gemini", acptest.GeminiBinary(b)) {
		b.Run(p.name, func(b *testing.B) {
			g := newGate()
			mock := acptest.NewMockGemini(b, func(q acptest.Request) acptest.Reply {
				if strings.Contains(q.LastUserText(), measureMarker) {
					<-g.ch
				}
				return acptest.DefaultScript(q)
			})
			b.Cleanup(g.release) // runs before the mock's Close
			home := geminiHome(b)
			env := acptest.GeminiEnv(home, mock)
			// Headless gemini refuses an untrusted workspace (exit 55).
			envList := []string{"GEMINI_CLI_TRUST_WORKSPACE=true"}
			for _, k := range slices.Sorted(maps.Keys(env)) {
				envList = append(envList, k+"="+env[k])
			}
			benchCLITurns(b, p, envList, g, func(ctx context.Context) error {
				_, err := mock.WaitRequest(ctx, func(q acptest.Request) bool { return strings.Contains(q.LastUserText(), measureMarker) })
				return err
			})
			if other := mock.Other(); len(other) > 0 {
				b.Errorf("gemini sent requests the mock does not serve: %v", other)
			}
		})
	}
}

// BenchmarkClaudeTurn: Claude Code 2.1.330 through `tthost agent-loop`,
// persistent on the Claude backend (stream-json) vs one-shot (Tinytown's
// preset `claude --print --dangerously-skip-permissions`, the prompt on
// stdin), against claudetest's MockAnthropic. As root, claude refuses
// --dangerously-skip-permissions without IS_SANDBOX=1: the Claude backend
// and the one-shot backend both set it.
func BenchmarkClaudeTurn(b *testing.B) {
	command := claudetest.Binary(b) + " --print --dangerously-skip-permissions"
	for _, p := range persistentAndOneShot("claude-persistent", "claude", command) {
		b.Run(p.name, func(b *testing.B) {
			g := newGate()
			mock := claudetest.NewMockAnthropic(b, func(q claudetest.Request) claudetest.Reply {
				r := claudetest.DefaultScript(q)
				if !q.IsSideRequest() && strings.Contains(q.LastUserText(), measureMarker) {
					r.Hold = g.ch
				}
				return r
			})
			b.Cleanup(g.release)
			env := claudetest.Env(claudetest.NewHome(b), mock)
			benchCLITurns(b, p, env, g, func(ctx context.Context) error {
				_, err := mock.WaitRequest(ctx, func(q claudetest.Request) bool {
					return !q.IsSideRequest() && strings.Contains(q.LastUserText(), measureMarker)
				})
				return err
			})
		})
	}
}

// benchCLITurns runs the turns of one path and reports them; held waits
// until the mock holds the measureMarker request.
func benchCLITurns(b *testing.B, p cliPath, env []string, g *gate, held func(context.Context) error) {
	t := startTownWith(b, townOpts{cli: p.cli, env: env, configure: p.configure})
	ctx := context.Background()
	start := time.Now()
	_, _, last := t.timedTurn(ctx, "warm up: say hello", "")
	cold := time.Since(start)
	var first, whole samples
	i := 0
	for b.Loop() {
		i++
		f, w, id := t.timedTurn(ctx, fmt.Sprintf("turn %d: say hello", i), last)
		first, whole, last = append(first, f), append(whole, w), id
	}
	// Memory, with the CLI in a turn.
	if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, measureMarker)); err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := held(wctx); err != nil {
		b.Fatalf("the memory turn never reached the model: %v", err)
	}
	rss := t.sessionRSS()
	g.release()
	t.waitEvent(town.EventAgentTurnCompleted, last)

	b.ReportMetric(ms(cold), "cold-turn-ms")
	first.report(b, "first-delta-")
	whole.report(b, "turn-")
	b.ReportMetric(rss["plugin"], "plugin-MB")
	b.ReportMetric(rss["cli"], "cli-MB")
	b.ReportMetric(rss["plugin"]+rss["cli"], "session-MB")
	b.ReportMetric(rss["host"], "host-MB")
}

// timedTurn sends a task to the agent and follows its event stream after
// the entry id after: the time to the turn's first assistant delta and to
// its completion, and the completion's entry id.
func (t *benchTown) timedTurn(ctx context.Context, text, after string) (first, whole time.Duration, id string) {
	t.b.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sent := time.Now()
	if err := t.store.Send(ctx, town.NewTask(town.SupervisorID, t.agent.ID, text)); err != nil {
		t.b.Fatal(err)
	}
	stop := errors.New("completed")
	err := t.store.FollowEvents(ctx, t.store.Keys().EventsAgent(t.agent.ID), after, func(en town.EventEntry) error {
		if en.Event == nil {
			return nil
		}
		switch en.Event.Type {
		case town.EventAgentAssistantDelta:
			// The model's text: a one-shot CLI's own notices on its
			// output are deltas too, but not the answer.
			if first == 0 && strings.Contains(deltaText(en.Event), answerMark) {
				first = time.Since(sent)
			}
		case town.EventAgentTurnCompleted:
			whole, id = time.Since(sent), en.ID
			if !strings.Contains(en.Event.Message, "completed") {
				return fmt.Errorf("the turn did not complete: %s", en.Event.Message)
			}
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.b.Fatalf("turn %q: %v", text, err)
	}
	if first == 0 {
		t.b.Fatalf("turn %q completed without the model's answer (%q) in an assistant delta", text, answerMark)
	}
	return first, whole, id
}

// deltaText is an assistant delta event's text: the whole batch from the
// event's tthost detail (its message shows only the last line, and a
// one-shot CLI's notices can follow the answer in one batch).
func deltaText(ev *town.TownEvent) string {
	var d struct {
		Text string `json:"text"`
	}
	if raw, ok := ev.Extra["tthost"].(json.RawMessage); ok && json.Unmarshal(raw, &d) == nil && d.Text != "" {
		return d.Text
	}
	return ev.Message
}

// sessionRSS sums VmRSS (MB) of the town's processes: "host" (tthost
// agent-loop), "plugin" (the tthost-backend-* processes that serve the
// session) and "cli" (every process the plugin started for the CLI: they
// carry a process tag, sdk/plugin.StartProcess).
func (t *benchTown) sessionRSS() map[string]float64 {
	out := map[string]float64{}
	for _, pid := range t.procs.Alive() {
		cmd := sdktest.Cmdline(pid)
		role := ""
		switch {
		case hasProcessTag(pid):
			role = "cli"
		case strings.Contains(cmd, "agent-loop"):
			role = "host"
		case strings.Contains(filepath.Base(strings.Fields(cmd + " x")[0]), "tthost-backend-"):
			role = "plugin"
		default:
			continue
		}
		out[role] += vmRSS(pid)
	}
	return out
}

func hasProcessTag(pid int) bool {
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	return err == nil && bytes.Contains(append([]byte{0}, environ...), []byte("\x00"+plugin.ProcessTagEnv+"="))
}

// geminiHome is acptest's offline gemini home with the auth type chosen in
// settings.json: one-shot gemini 0.61.0 (non-interactive) picks the
// `gateway` auth type by itself when GOOGLE_GEMINI_BASE_URL is set, then
// refuses it ("Invalid auth method selected.", exit 41); `gemini-api-key`
// with the dummy GEMINI_API_KEY passes and still sends every request to
// GOOGLE_GEMINI_BASE_URL. Both paths use the same home.
func geminiHome(b *testing.B) string {
	home := acptest.NewGeminiHome(b)
	settings := strings.Replace(acptest.GeminiSettings, "\n  \"telemetry\"", "\n  \"security\": {\"auth\": {\"selectedType\": \"gemini-api-key\"}},\n  \"telemetry\"", 1)
	if settings == acptest.GeminiSettings {
		b.Fatal("acptest.GeminiSettings changed: update geminiHome")
	}
	if err := os.WriteFile(filepath.Join(home, ".gemini", "settings.json"), []byte(settings), 0o600); err != nil {
		b.Fatal(err)
	}
	return home
}
