package cache

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/storage"
)

type metrics struct {
	results      *prometheus.CounterVec // kind, result
	bytes        *prometheus.CounterVec // source
	fetched      prometheus.Counter
	fills        *prometheus.CounterVec // result
	fillTime     prometheus.Histogram
	inflight     prometheus.Gauge
	coalesced    prometheus.Counter
	resumes      prometheus.Counter
	uncached     prometheus.Counter
	ttfb         prometheus.Histogram
	staleTotal   *prometheus.CounterVec // namespace
	evictions    *prometheus.CounterVec // reason
	evictedNamed prometheus.Counter
	passedOver   *prometheus.CounterVec // namespace, origin, reason
	storage      []prometheus.Collector
}

// newMetrics builds the cache metrics and registers them on reg (nil: not
// registered, for tests and embedders).
func newMetrics(reg prometheus.Registerer, store *storage.Store, capacity int64) (*metrics, error) {
	m := &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_cache_requests_total",
			Help: "Content lookups by kind (manifest, tag, blob) and result (hit, miss, stale, error).",
		}, []string{"kind", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_cache_served_bytes_total",
			Help: "Blob bytes written to clients, by source (cache: a committed file; fill: a fill in progress; uncached: read from the source because the disk was full).",
		}, []string{"source"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_cache_upstream_bytes_total",
			Help: "Blob bytes fetched by fills (from an upstream or, later, a peer).",
		}),
		fills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_cache_fills_total",
			Help: "Blob fills by result (committed, verify_failed, upstream_error, aborted, no_space: the disk stayed full after evicting).",
		}, []string{"result"}),
		fillTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_cache_fill_duration_seconds",
			Help:    "Time from a fill's start to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9),
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cairn_cache_fills_in_flight",
			Help: "Blob fills running now.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_cache_fill_readers_coalesced_total",
			Help: "Blob requests that joined a fill already in flight instead of starting one.",
		}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_cache_fill_resumes_total",
			Help: "Source bodies reopened with Range after a drop or a stall.",
		}),
		uncached: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_cache_uncached_reads_total",
			Help: "Blob reads that went to the source on their own, uncached, because the disk stayed full after evicting.",
		}),
		ttfb: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_cache_fill_first_byte_seconds",
			Help:    "From a reader joining a fill to its first byte sent.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		staleTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_cache_stale_served_total",
			Help: "Tags served from their last known digest because the upstream failed, by namespace.",
		}, []string{"namespace"}),
	}
	m.evictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_storage_evictions_total",
		Help: "Blobs evicted, by reason (size: over the high mark of max_size; disk_full: a fill found the disk full).",
	}, []string{"reason"})
	m.evictedNamed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_storage_evicted_still_named_total",
		Help: "Evicted blobs that a cached manifest still names (fetched again when asked for).",
	})
	m.passedOver = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_origin_passed_over_total",
		Help: "Reads that left an origin for the next one in line (an owner peer for the upstream), by namespace, origin kind (peer, upstream) and reason (circuit_open, timeout, unavailable, rate_limited, not_found, denied, error).",
	}, []string{"namespace", "origin", "reason"})
	m.storage = storageGauges(store, capacity)
	if reg == nil {
		return m, nil
	}
	all := []prometheus.Collector{m.results, m.bytes, m.fetched, m.fills, m.fillTime, m.inflight, m.coalesced, m.resumes, m.uncached, m.ttfb, m.staleTotal, m.evictions, m.evictedNamed, m.passedOver}
	for _, c := range append(all, m.storage...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// storageGauges read the store's usage at scrape time.
func storageGauges(store *storage.Store, capacity int64) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_storage_used_bytes",
			Help: "Bytes of committed blobs on disk.",
		}, func() float64 { b, _ := store.Usage(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_storage_blobs",
			Help: "Committed blobs on disk.",
		}, func() float64 { _, n := store.Usage(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_storage_pinned_blobs",
			Help: "Blobs with at least one pin (config rules, cairn cache pin, pushes): never evicted.",
		}, func() float64 { n, _ := store.PinnedBlobs(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cairn_storage_verify_failures_total",
			Help: "Blob files quarantined because their content did not match their digest (cairn cache verify, or the walk after an unclean stop).",
		}, func() float64 { return float64(store.VerifyFailures()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_storage_capacity_bytes",
			Help: "cache.max_size (0: no cap).",
		}, func() float64 { return float64(capacity) }),
	}
}
