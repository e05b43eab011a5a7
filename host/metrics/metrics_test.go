package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tthost/tthost/host/agentloop"
	"github.com/tthost/tthost/sdk"
)

var (
	alice = agentloop.AgentRef{ID: "a-1", Name: "alice", CLI: "codex"}
	bob   = agentloop.AgentRef{ID: "b-2", Name: "bob", CLI: "claude"}
)

// serve starts Serve on 127.0.0.1:0 for the test and returns its base URL;
// the server is shut down when the test ends.
func serve(t *testing.T, m *Metrics, health func() error) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := Serve(ctx, "127.0.0.1:0", m, health, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	return "http://" + addr.String()
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// families is a parsed scrape.
type families map[string]*dto.MetricFamily

// scrape GETs base/metrics and parses the text exposition.
func scrape(t *testing.T, base string) families {
	t.Helper()
	code, body, hdr := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs
}

// find returns the metric of family name whose labels are exactly labels
// ("k=v" pairs), or nil.
func (f families) find(t *testing.T, name string, labels ...string) *dto.Metric {
	t.Helper()
	mf := f[name]
	if mf == nil {
		return nil
	}
	want := strings.Join(labels, ",")
	for _, m := range mf.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		if strings.Join(got, ",") == want {
			return m
		}
	}
	return nil
}

// value returns the value of a counter or gauge series; the test fails if
// the series is missing.
func (f families) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := f.find(t, name, labels...)
	if m == nil {
		t.Fatalf("no series %s{%s}", name, strings.Join(labels, ","))
	}
	switch f[name].GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s is a %v, not a counter or gauge", name, f[name].GetType())
	return 0
}

func (f families) histogram(t *testing.T, name string, labels ...string) *dto.Histogram {
	t.Helper()
	m := f.find(t, name, labels...)
	if m == nil || m.GetHistogram() == nil {
		t.Fatalf("no histogram %s{%s}", name, strings.Join(labels, ","))
	}
	return m.GetHistogram()
}

// series counts the series of family name that carry label k=v.
func (f families) series(name, k, v string) int {
	n := 0
	for _, m := range f[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				n++
			}
		}
	}
	return n
}

func wantEq(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// bucket returns the cumulative count of h's bucket with upper bound le.
func bucket(t *testing.T, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket le=%v", le)
	return 0
}

func TestScrapeReportsExactValues(t *testing.T) {
	m := New(Options{HostID: "host-1", Version: "v1.2.3", Capacity: 8})
	base := serve(t, m, nil)

	m.SetAgentsServed(5)
	m.SetAgentsServed(3)
	m.TurnEnded(agentloop.TurnReport{Agent: alice, Backend: "codex-app", Outcome: agentloop.OutcomeCompleted,
		Duration: 1500 * time.Millisecond,
		Usage:    sdk.Usage{InputTokens: 100, CachedInputTokens: 20, OutputTokens: 30, TotalTokens: 150}})
	m.TurnEnded(agentloop.TurnReport{Agent: alice, Backend: "codex-app", Outcome: agentloop.OutcomeCompleted,
		Duration: 90 * time.Second,
		Usage:    sdk.Usage{InputTokens: 50, OutputTokens: 5, TotalTokens: 55}})
	m.TurnEnded(agentloop.TurnReport{Agent: bob, Backend: "claude-sdk", Outcome: agentloop.OutcomeFailed,
		Duration: 200 * time.Millisecond,
		Usage:    sdk.Usage{ReasoningOutputTokens: 7}})
	m.TurnEnded(agentloop.TurnReport{Agent: bob, Backend: "claude-sdk", Outcome: agentloop.OutcomeInterrupted,
		Duration: 2 * time.Hour}) // beyond the last bucket; no usage
	m.Steered(alice, 300*time.Microsecond)
	m.Steered(bob, 20*time.Millisecond)
	m.Steered(alice, 30*time.Second) // beyond the last bucket
	m.QueueDepth(alice, 4, 2)
	m.QueueDepth(alice, 3, 0) // replaces the first
	m.QueueDepth(bob, 1, 1)
	m.RedisError(alice)
	m.RedisError(bob)
	m.RedisErrorHost()
	m.PluginRestarted("codex-app")
	m.PluginRestarted("codex-app")
	m.PluginRestarted("claude-sdk")
	m.LeaseTakeover()

	f := scrape(t, base)

	wantEq(t, "build_info", f.value(t, "tthost_build_info", "host_id=host-1", "version=v1.2.3"), 1)
	wantEq(t, "capacity", f.value(t, "tthost_host_capacity"), 8)
	wantEq(t, "agents_served", f.value(t, "tthost_agents_served"), 3)

	wantEq(t, "turns codex completed", f.value(t, "tthost_turns_total", "backend=codex-app", "cli=codex", "outcome=completed"), 2)
	wantEq(t, "turns claude failed", f.value(t, "tthost_turns_total", "backend=claude-sdk", "cli=claude", "outcome=failed"), 1)
	wantEq(t, "turns claude interrupted", f.value(t, "tthost_turns_total", "backend=claude-sdk", "cli=claude", "outcome=interrupted"), 1)
	if n := len(f["tthost_turns_total"].GetMetric()); n != 3 {
		t.Errorf("tthost_turns_total has %d series, want 3", n)
	}

	h := f.histogram(t, "tthost_turn_duration_seconds", "cli=codex", "outcome=completed")
	if h.GetSampleCount() != 2 {
		t.Errorf("codex completed turn count = %d, want 2", h.GetSampleCount())
	}
	wantEq(t, "codex completed turn sum", h.GetSampleSum(), 91.5)
	if got := len(h.GetBucket()); got != len(TurnDurationBuckets)+1 { // +Inf
		t.Errorf("turn duration has %d buckets, want %d", got, len(TurnDurationBuckets)+1)
	}
	for le, want := range map[float64]uint64{0.05: 0, 1: 0, 2.5: 1, 60: 1, 120: 2, 3600: 2, math.Inf(1): 2} {
		if got := bucket(t, h, le); got != want {
			t.Errorf("codex completed turns le=%v: %d, want %d", le, got, want)
		}
	}
	h = f.histogram(t, "tthost_turn_duration_seconds", "cli=claude", "outcome=interrupted")
	if got, inf := bucket(t, h, 3600), bucket(t, h, math.Inf(1)); got != 0 || inf != 1 || h.GetSampleCount() != 1 {
		t.Errorf("2 h turn: le=3600 %d (want 0), le=+Inf %d (want 1), count %d (want 1)", got, inf, h.GetSampleCount())
	}

	wantEq(t, "alice input", f.value(t, "tthost_tokens_total", "agent=alice", "cli=codex", "kind=input"), 150)
	wantEq(t, "alice cached_input", f.value(t, "tthost_tokens_total", "agent=alice", "cli=codex", "kind=cached_input"), 20)
	wantEq(t, "alice output", f.value(t, "tthost_tokens_total", "agent=alice", "cli=codex", "kind=output"), 35)
	wantEq(t, "bob reasoning_output", f.value(t, "tthost_tokens_total", "agent=bob", "cli=claude", "kind=reasoning_output"), 7)
	if f.find(t, "tthost_tokens_total", "agent=alice", "cli=codex", "kind=reasoning_output") != nil {
		t.Error("alice has a reasoning_output series though she never reported any")
	}
	if n := len(f["tthost_tokens_total"].GetMetric()); n != 4 {
		t.Errorf("tthost_tokens_total has %d series, want 4 (zero usage adds none)", n)
	}

	wantEq(t, "alice inbox", f.value(t, "tthost_queue_depth", "agent=alice", "queue=inbox"), 3)
	wantEq(t, "alice urgent", f.value(t, "tthost_queue_depth", "agent=alice", "queue=urgent"), 0)
	wantEq(t, "bob inbox", f.value(t, "tthost_queue_depth", "agent=bob", "queue=inbox"), 1)
	wantEq(t, "bob urgent", f.value(t, "tthost_queue_depth", "agent=bob", "queue=urgent"), 1)

	h = f.histogram(t, "tthost_steer_latency_seconds")
	if h.GetSampleCount() != 3 {
		t.Errorf("steer count = %d, want 3", h.GetSampleCount())
	}
	wantEq(t, "steer sum", h.GetSampleSum(), 0.0003+0.02+30)
	if got := len(h.GetBucket()); got != len(SteerLatencyBuckets)+1 { // +Inf
		t.Errorf("steer latency has %d buckets, want %d", got, len(SteerLatencyBuckets)+1)
	}
	for le, want := range map[float64]uint64{0.0001: 0, 0.0005: 1, 0.01: 1, 0.025: 2, 10: 2, math.Inf(1): 3} {
		if got := bucket(t, h, le); got != want {
			t.Errorf("steer le=%v: %d, want %d", le, got, want)
		}
	}

	wantEq(t, "redis errors", f.value(t, "tthost_redis_errors_total"), 3)
	wantEq(t, "codex-app restarts", f.value(t, "tthost_plugin_restarts_total", "backend=codex-app"), 2)
	wantEq(t, "claude-sdk restarts", f.value(t, "tthost_plugin_restarts_total", "backend=claude-sdk"), 1)
	wantEq(t, "lease takeovers", f.value(t, "tthost_lease_takeovers_total"), 1)

	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if f[name] == nil {
			t.Errorf("no %s: the Go or process collector is missing", name)
		}
	}
}

func TestCountersStartAtZero(t *testing.T) {
	m := New(Options{HostID: "h", Version: "dev"})
	f := scrape(t, serve(t, m, nil))
	for _, name := range []string{"tthost_redis_errors_total", "tthost_lease_takeovers_total", "tthost_agents_served", "tthost_host_capacity"} {
		wantEq(t, name, f.value(t, name), 0)
	}
	if h := f.histogram(t, "tthost_steer_latency_seconds"); h.GetSampleCount() != 0 {
		t.Errorf("steer count = %d, want 0", h.GetSampleCount())
	}
}

func TestForgetDeletesOnlyThatAgentsSeries(t *testing.T) {
	m := New(Options{HostID: "h", Version: "dev", Capacity: 2})
	base := serve(t, m, nil)
	for _, a := range []agentloop.AgentRef{alice, bob} {
		m.TurnEnded(agentloop.TurnReport{Agent: a, Backend: "b", Outcome: agentloop.OutcomeCompleted,
			Duration: time.Second, Usage: sdk.Usage{InputTokens: 10, CachedInputTokens: 1, OutputTokens: 2, ReasoningOutputTokens: 3}})
		m.QueueDepth(a, 5, 6)
	}
	f := scrape(t, base)
	for _, fam := range []string{"tthost_tokens_total", "tthost_queue_depth"} {
		if f.series(fam, "agent", "alice") == 0 || f.series(fam, "agent", "bob") == 0 {
			t.Fatalf("%s lacks a series of alice or bob before Forget", fam)
		}
	}

	m.Forget(alice)
	f = scrape(t, base)
	if n := f.series("tthost_tokens_total", "agent", "alice"); n != 0 {
		t.Errorf("alice still has %d tthost_tokens_total series after Forget", n)
	}
	if n := f.series("tthost_queue_depth", "agent", "alice"); n != 0 {
		t.Errorf("alice still has %d tthost_queue_depth series after Forget", n)
	}
	if n := f.series("tthost_tokens_total", "agent", "bob"); n != 4 {
		t.Errorf("bob has %d tthost_tokens_total series after alice's Forget, want 4", n)
	}
	wantEq(t, "bob inbox", f.value(t, "tthost_queue_depth", "agent=bob", "queue=inbox"), 5)
	// Host-wide families keep what alice contributed.
	wantEq(t, "codex turns", f.value(t, "tthost_turns_total", "backend=b", "cli=codex", "outcome=completed"), 1)

	m.Forget(alice) // forgetting twice, or an agent never seen, is harmless
	m.Forget(agentloop.AgentRef{Name: "nobody"})
	m.Forget(bob)
	f = scrape(t, base)
	if f["tthost_tokens_total"] != nil || f["tthost_queue_depth"] != nil {
		t.Errorf("per-agent families still have series after every agent left: %v %v",
			f["tthost_tokens_total"], f["tthost_queue_depth"])
	}
}

func TestHealthz(t *testing.T) {
	var mu sync.Mutex
	var healthErr error
	health := func() error {
		mu.Lock()
		defer mu.Unlock()
		return healthErr
	}
	base := serve(t, New(Options{}), health)

	code, body, hdr := get(t, base+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthy: %d %q, want 200 \"ok\\n\"", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("healthz Content-Type %q", ct)
	}

	mu.Lock()
	healthErr = errors.New("redis: connection refused")
	mu.Unlock()
	code, body, _ = get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || body != "redis: connection refused\n" {
		t.Errorf("unhealthy: %d %q, want 503 \"redis: connection refused\\n\"", code, body)
	}

	mu.Lock()
	healthErr = nil
	mu.Unlock()
	if code, _, _ = get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthy again: %d, want 200", code)
	}
}

func TestHealthzWithoutCheckIsOK(t *testing.T) {
	code, body, _ := get(t, serve(t, New(Options{}), nil)+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("%d %q, want 200 \"ok\\n\"", code, body)
	}
}

func TestOtherPathsAre404(t *testing.T) {
	base := serve(t, New(Options{}), nil)
	for _, p := range []string{"/", "/metrics/x", "/healthz/", "/debug/pprof/", "/favicon.ico"} {
		if code, _, _ := get(t, base+p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

func TestServeListenErrorNamesAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	busy := ln.Addr().String()

	addr, err := Serve(context.Background(), busy, New(Options{}), nil, nil)
	if err == nil {
		t.Fatalf("Serve on busy %s returned %v and no error", busy, addr)
	}
	if !strings.Contains(err.Error(), busy) {
		t.Errorf("error %q does not name %s", err, busy)
	}

	if _, err := Serve(context.Background(), "127.0.0.1:99999", New(Options{}), nil, nil); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:99999") {
		t.Errorf("bad address: error %v does not name it", err)
	}
}

// signalWriter closes done when a log line contains want.
type signalWriter struct {
	want string
	once sync.Once
	done chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(w.want)) {
		w.once.Do(func() { close(w.done) })
	}
	return len(p), nil
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	stopped := &signalWriter{want: "metrics server stopped", done: make(chan struct{})}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: stopped})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := Serve(ctx, "127.0.0.1:0", New(Options{}), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, "http://"+addr.String()+"/healthz"); code != http.StatusOK {
		t.Fatalf("before cancel: %d", code)
	}

	cancel()
	<-stopped.done
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after the server stopped", addr)
	}
}

func TestConcurrentUseGivesExactTotals(t *testing.T) {
	const goroutines, calls = 50, 100
	m := New(Options{HostID: "h", Version: "dev", Capacity: goroutines})
	base := serve(t, m, nil)

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := agentloop.AgentRef{ID: fmt.Sprint(g), Name: fmt.Sprintf("agent-%d", g%5), CLI: "codex"}
			gone := agentloop.AgentRef{Name: fmt.Sprintf("gone-%d", g), CLI: "codex"}
			for i := range calls {
				m.TurnEnded(agentloop.TurnReport{Agent: a, Backend: "codex-app", Outcome: agentloop.OutcomeCompleted,
					Duration: time.Second, Usage: sdk.Usage{InputTokens: 3, OutputTokens: 1}})
				m.Steered(a, time.Millisecond)
				m.QueueDepth(a, int64(i), 0)
				m.RedisError(a)
				m.RedisErrorHost()
				m.PluginRestarted("codex-app")
				m.LeaseTakeover()
				m.SetAgentsServed(g)
				m.QueueDepth(gone, 1, 1)
				m.Forget(gone)
			}
		}()
	}
	// Scrapes run while the goroutines report.
	scrapes := make(chan struct{})
	go func() {
		defer close(scrapes)
		for range 5 {
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Errorf("concurrent scrape: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	wg.Wait()
	<-scrapes

	f := scrape(t, base)
	const n = goroutines * calls
	wantEq(t, "turns", f.value(t, "tthost_turns_total", "backend=codex-app", "cli=codex", "outcome=completed"), n)
	if h := f.histogram(t, "tthost_turn_duration_seconds", "cli=codex", "outcome=completed"); h.GetSampleCount() != n {
		t.Errorf("turn duration count %d, want %d", h.GetSampleCount(), n)
	}
	var input, output float64
	for i := range 5 {
		agent := fmt.Sprintf("agent=agent-%d", i)
		input += f.value(t, "tthost_tokens_total", agent, "cli=codex", "kind=input")
		output += f.value(t, "tthost_tokens_total", agent, "cli=codex", "kind=output")
		wantEq(t, agent+" inbox", f.value(t, "tthost_queue_depth", agent, "queue=inbox"), calls-1)
	}
	wantEq(t, "input tokens", input, 3*n)
	wantEq(t, "output tokens", output, n)
	if h := f.histogram(t, "tthost_steer_latency_seconds"); h.GetSampleCount() != n {
		t.Errorf("steer count %d, want %d", h.GetSampleCount(), n)
	}
	wantEq(t, "redis errors", f.value(t, "tthost_redis_errors_total"), 2*n)
	wantEq(t, "plugin restarts", f.value(t, "tthost_plugin_restarts_total", "backend=codex-app"), n)
	wantEq(t, "lease takeovers", f.value(t, "tthost_lease_takeovers_total"), n)
	if got := len(f["tthost_queue_depth"].GetMetric()); got != 10 {
		t.Errorf("tthost_queue_depth has %d series, want 10 (5 agents × 2 queues; the forgotten ones gone)", got)
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := New(Options{HostID: "a"}), New(Options{HostID: "b"})
	a.LeaseTakeover()
	fa, fb := scrape(t, serve(t, a, nil)), scrape(t, serve(t, b, nil))
	wantEq(t, "a takeovers", fa.value(t, "tthost_lease_takeovers_total"), 1)
	wantEq(t, "b takeovers", fb.value(t, "tthost_lease_takeovers_total"), 0)
}

func BenchmarkTurnEnded(b *testing.B) {
	m := New(Options{HostID: "h", Version: "dev", Capacity: 100})
	r := agentloop.TurnReport{Agent: alice, Backend: "codex-app", Outcome: agentloop.OutcomeCompleted,
		Duration: 42 * time.Second,
		Usage:    sdk.Usage{InputTokens: 1000, CachedInputTokens: 800, OutputTokens: 200, ReasoningOutputTokens: 50}}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.TurnEnded(r)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.TurnEnded(r)
			}
		})
	})
}
