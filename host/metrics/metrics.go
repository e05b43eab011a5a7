// Package metrics exposes the health of a tthost host process in the
// Prometheus text format, so one long-running `tthost serve` that runs the
// agent loops of many agents can be watched and alerted on like any other
// service.
//
// A Metrics owns its own prometheus.Registry (never the global default
// one, so two hosts in one process, or a test, never share series). It
// implements agentloop.Observer, so every loop of the host reports to it,
// and it has methods for the host's own events. Serve puts it on an HTTP
// listener together with a health check.
//
// Families (see docs/metrics.md for the full table):
//
//	tthost_build_info{version,host_id}              gauge, always 1: which build runs where
//	tthost_host_capacity                            gauge: how many agents this host may serve
//	tthost_agents_served                            gauge: how many agents it serves now
//	tthost_turns_total{cli,backend,outcome}         counter: settled turns by outcome
//	tthost_turn_duration_seconds{cli,outcome}       histogram: how long turns take (0.05 s to 1 h)
//	tthost_tokens_total{agent,cli,kind}             counter: tokens used; kind is input,
//	                                                cached_input, output or reasoning_output
//	tthost_queue_depth{agent,queue}                 gauge: messages waiting; queue is inbox or urgent
//	tthost_steer_latency_seconds                    histogram: intake to backend receipt of a
//	                                                steered urgent message (100 µs to 10 s)
//	tthost_redis_errors_total                       counter: failed Redis calls of loops and host
//	tthost_plugin_restarts_total{backend}           counter: backend plugin processes restarted
//	tthost_lease_takeovers_total                    counter: agents taken over from a dead holder
//
// plus the Go runtime (go_*) and process (process_*) collectors.
//
// The per-agent series (tokens, queue depth) carry the agent's name; Forget
// deletes them when an agent leaves the host, so their number stays bounded
// by the agents the host serves, not by all it ever served.
//
// All methods are safe for concurrent use and never block: they only
// update in-memory counters.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tthost/tthost/host/agentloop"
)

// Options describe the host a Metrics is about.
type Options struct {
	HostID   string // the host's id, a label of tthost_build_info
	Version  string // the build's version, a label of tthost_build_info
	Capacity int    // how many agents the host may serve (tthost_host_capacity)
}

// Token kinds, the values of the kind label of tthost_tokens_total.
const (
	KindInput           = "input"
	KindCachedInput     = "cached_input"
	KindOutput          = "output"
	KindReasoningOutput = "reasoning_output"
)

// Queues, the values of the queue label of tthost_queue_depth.
const (
	QueueInbox  = "inbox"
	QueueUrgent = "urgent"
)

// TurnDurationBuckets are the buckets of tthost_turn_duration_seconds: a
// coding turn takes from a fraction of a second to an hour.
var TurnDurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// SteerLatencyBuckets are the buckets of tthost_steer_latency_seconds,
// from 100 µs to 10 s.
var SteerLatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics holds a host's metric families in its own registry. Create it
// with New.
type Metrics struct {
	reg *prometheus.Registry

	agentsServed   prometheus.Gauge
	turns          *prometheus.CounterVec
	turnDuration   *prometheus.HistogramVec
	tokens         *prometheus.CounterVec
	queueDepth     *prometheus.GaugeVec
	steerLatency   prometheus.Histogram
	redisErrors    prometheus.Counter
	pluginRestarts *prometheus.CounterVec
	leaseTakeovers prometheus.Counter
}

var _ agentloop.Observer = (*Metrics)(nil)

// New returns a Metrics with every family, and the Go runtime and process
// collectors, registered on a new registry.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		reg: reg,
		agentsServed: f.gauge(prometheus.GaugeOpts{
			Name: "tthost_agents_served",
			Help: "Agents whose loops this host runs now.",
		}),
		turns: f.counterVec(prometheus.CounterOpts{
			Name: "tthost_turns_total",
			Help: "Turns that reached the CLI, by outcome (completed, failed, interrupted, lost).",
		}, "cli", "backend", "outcome"),
		turnDuration: f.histogramVec(prometheus.HistogramOpts{
			Name:    "tthost_turn_duration_seconds",
			Help:    "Duration of the turns that reached the CLI, by outcome.",
			Buckets: TurnDurationBuckets,
		}, "cli", "outcome"),
		tokens: f.counterVec(prometheus.CounterOpts{
			Name: "tthost_tokens_total",
			Help: "Tokens the backends reported, by agent and kind (input, cached_input, output, reasoning_output).",
		}, "agent", "cli", "kind"),
		queueDepth: f.gaugeVec(prometheus.GaugeOpts{
			Name: "tthost_queue_depth",
			Help: "Messages waiting in an agent's queue (inbox or urgent) after its last intake.",
		}, "agent", "queue"),
		steerLatency: f.histogram(prometheus.HistogramOpts{
			Name:    "tthost_steer_latency_seconds",
			Help:    "Time from the intake of an urgent message to the backend's receipt of it as a steer into a running turn.",
			Buckets: SteerLatencyBuckets,
		}),
		redisErrors: f.counter(prometheus.CounterOpts{
			Name: "tthost_redis_errors_total",
			Help: "Redis calls of the agent loops and the host that failed (a loop's outage counts once).",
		}),
		pluginRestarts: f.counterVec(prometheus.CounterOpts{
			Name: "tthost_plugin_restarts_total",
			Help: "Backend plugin processes restarted, by backend.",
		}, "backend"),
		leaseTakeovers: f.counter(prometheus.CounterOpts{
			Name: "tthost_lease_takeovers_total",
			Help: "Agents this host took over from a holder whose lease had expired.",
		}),
	}
	f.gauge(prometheus.GaugeOpts{
		Name: "tthost_host_capacity",
		Help: "Agents this host may serve at most.",
	}).Set(float64(opts.Capacity))
	f.gauge(prometheus.GaugeOpts{
		Name:        "tthost_build_info",
		Help:        "Always 1; its labels name the build and the host.",
		ConstLabels: prometheus.Labels{"version": opts.Version, "host_id": opts.HostID},
	}).Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// factory creates collectors and registers them on reg.
type factory struct{ reg *prometheus.Registry }

func (f factory) gauge(o prometheus.GaugeOpts) prometheus.Gauge {
	c := prometheus.NewGauge(o)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(o prometheus.GaugeOpts, labels ...string) *prometheus.GaugeVec {
	c := prometheus.NewGaugeVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) counter(o prometheus.CounterOpts) prometheus.Counter {
	c := prometheus.NewCounter(o)
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(o prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(o prometheus.HistogramOpts) prometheus.Histogram {
	c := prometheus.NewHistogram(o)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogramVec(o prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	c := prometheus.NewHistogramVec(o, labels)
	f.reg.MustRegister(c)
	return c
}

// Registry returns the registry the families are registered on, for a
// caller that adds its own collectors or gathers directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry's metrics in the Prometheus exposition
// format. A collector that fails does not fail the scrape: the others are
// still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // counts promhttp_metric_handler_errors_total
	})
}

// SetAgentsServed sets tthost_agents_served to the agents the host serves
// now.
func (m *Metrics) SetAgentsServed(n int) { m.agentsServed.Set(float64(n)) }

// TurnEnded counts a settled turn in tthost_turns_total and
// tthost_turn_duration_seconds, and adds its non-zero token usage to
// tthost_tokens_total.
func (m *Metrics) TurnEnded(r agentloop.TurnReport) {
	cli := r.Agent.CLI
	m.turns.WithLabelValues(cli, r.Backend, r.Outcome).Inc()
	m.turnDuration.WithLabelValues(cli, r.Outcome).Observe(r.Duration.Seconds())
	u := r.Usage
	m.addTokens(r.Agent, KindInput, u.InputTokens)
	m.addTokens(r.Agent, KindCachedInput, u.CachedInputTokens)
	m.addTokens(r.Agent, KindOutput, u.OutputTokens)
	m.addTokens(r.Agent, KindReasoningOutput, u.ReasoningOutputTokens)
}

func (m *Metrics) addTokens(a agentloop.AgentRef, kind string, n int64) {
	if n > 0 { // a counter only goes up; zero would only create a series
		m.tokens.WithLabelValues(a.Name, a.CLI, kind).Add(float64(n))
	}
}

// Steered observes the latency of a steered urgent message in
// tthost_steer_latency_seconds.
func (m *Metrics) Steered(_ agentloop.AgentRef, latency time.Duration) {
	m.steerLatency.Observe(latency.Seconds())
}

// QueueDepth sets the agent's tthost_queue_depth series.
func (m *Metrics) QueueDepth(a agentloop.AgentRef, inbox, urgent int64) {
	m.queueDepth.WithLabelValues(a.Name, QueueInbox).Set(float64(inbox))
	m.queueDepth.WithLabelValues(a.Name, QueueUrgent).Set(float64(urgent))
}

// RedisError counts a failed Redis call of an agent loop in
// tthost_redis_errors_total.
func (m *Metrics) RedisError(agentloop.AgentRef) { m.redisErrors.Inc() }

// RedisErrorHost counts a failed Redis call of the host itself (its lease,
// heartbeat or agent discovery) in tthost_redis_errors_total.
func (m *Metrics) RedisErrorHost() { m.redisErrors.Inc() }

// PluginRestarted counts a restart of a backend's plugin process in
// tthost_plugin_restarts_total.
func (m *Metrics) PluginRestarted(backend string) {
	m.pluginRestarts.WithLabelValues(backend).Inc()
}

// LeaseTakeover counts an agent this host took over from a holder that
// died, in tthost_lease_takeovers_total.
func (m *Metrics) LeaseTakeover() { m.leaseTakeovers.Inc() }

// Forget deletes the per-agent series (tthost_queue_depth and
// tthost_tokens_total) of an agent that left this host. Call it after the
// agent's loop has stopped: a later report of the loop would create them
// again.
func (m *Metrics) Forget(a agentloop.AgentRef) {
	l := prometheus.Labels{"agent": a.Name}
	m.queueDepth.DeletePartialMatch(l)
	m.tokens.DeletePartialMatch(l)
}
