package upstream

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations, used as the op metric label and in StatusError.Op.
const (
	OpManifestGet  = "manifest_get"
	OpManifestHead = "manifest_head"
	OpBlobGet      = "blob_get"
	OpBlobHead     = "blob_head"
	OpTags         = "tags"
	OpPing         = "ping"
)

// Metrics are the upstream request metrics. Build them once with NewMetrics
// and share them between clients; a nil *Metrics records nothing. Labels are
// bounded: namespace, op and status code only.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	remaining *prometheus.GaugeVec
	limit     *prometheus.GaugeVec
	refusals  *prometheus.CounterVec
	paused    *prometheus.GaugeVec
	failovers *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered). If reg already holds them (a second call), the registered
// collectors are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_upstream_requests_total",
			Help: "Requests sent to upstream registries, by namespace, endpoint, operation and HTTP status (\"error\" for transport failures).",
		}, []string{"namespace", "endpoint", "op", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_upstream_request_duration_seconds",
			Help:    "Time from sending an upstream request to its response headers.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"namespace", "endpoint", "op"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_upstream_refused_total",
			Help: "Requests cairn did not send to an upstream endpoint, by namespace, endpoint, operation and reason (max_connections, max_requests_per_second: waited too long; paused: a 429 paused that operation).",
		}, []string{"namespace", "endpoint", "op", "reason"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_upstream_paused_until_seconds",
			Help: "Until when (Unix time) an operation is paused at an upstream endpoint after it answered 429, by namespace, endpoint and operation.",
		}, []string{"namespace", "endpoint", "op"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_upstream_failovers_total",
			Help: "Requests that left an upstream endpoint for the next one, by namespace, the endpoint left and reason (circuit_open, unavailable, rate_limited, busy, not_found, denied, error).",
		}, []string{"namespace", "endpoint", "reason"}),
	}
	m.remaining = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cairn_upstream_ratelimit_remaining",
		Help: "The upstream's ratelimit-remaining header, last seen, by namespace.",
	}, []string{"namespace"})
	m.limit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cairn_upstream_ratelimit_limit",
		Help: "The upstream's ratelimit-limit header, last seen, by namespace.",
	}, []string{"namespace"})
	if reg != nil {
		m.requests = register(reg, m.requests)
		m.duration = register(reg, m.duration)
		m.remaining = register(reg, m.remaining)
		m.limit = register(reg, m.limit)
		m.refusals = register(reg, m.refusals)
		m.paused = register(reg, m.paused)
		m.failovers = register(reg, m.failovers)
	}
	return m
}

// register registers c, or returns the collector already registered under
// the same name. Other registration errors (inconsistent descriptors) leave
// c unregistered but usable.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}

// observe records one request: status is the HTTP status, or 0 for a
// transport failure.
func (m *Metrics) observe(namespace, endpoint, op string, status int, d time.Duration) {
	if m == nil {
		return
	}
	label := "error"
	if status > 0 {
		label = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(namespace, endpoint, op, label).Inc()
	m.duration.WithLabelValues(namespace, endpoint, op).Observe(d.Seconds())
}

func (m *Metrics) refused(namespace, endpoint, op, reason string) {
	if m != nil {
		m.refusals.WithLabelValues(namespace, endpoint, op, reason).Inc()
	}
}

func (m *Metrics) pausedUntil(namespace, endpoint, op string, until time.Time) {
	if m != nil {
		m.paused.WithLabelValues(namespace, endpoint, op).Set(float64(until.Unix()))
	}
}

func (m *Metrics) failover(namespace, endpoint, reason string) {
	if m != nil {
		m.failovers.WithLabelValues(namespace, endpoint, reason).Inc()
	}
}

func (m *Metrics) rateLimit(namespace string, rl RateLimit) {
	if m == nil {
		return
	}
	m.remaining.WithLabelValues(namespace).Set(float64(rl.Remaining))
	m.limit.WithLabelValues(namespace).Set(float64(rl.Limit))
}
