package cache

import "sync/atomic"

// Stats are what the cache did since the process started (for `cairn cache
// stats`; Prometheus has the same counts by kind).
type Stats struct {
	Hits, Misses uint64 // lookups answered locally / that went to the upstream
	ServedBytes  int64  // blob bytes sent to clients
	FetchedBytes int64  // blob bytes fetched by fills
}

// counters back Stats; updated with the Prometheus metrics.
type counters struct {
	hits, misses    atomic.Uint64
	served, fetched atomic.Int64
}

// Stats returns the counts since start.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		ServedBytes: c.stats.served.Load(), FetchedBytes: c.stats.fetched.Load(),
	}
}

// count records one lookup's result, in the metrics and in Stats.
func (c *Cache) count(kind, result string) {
	c.metrics.results.WithLabelValues(kind, result).Inc()
	switch result {
	case "miss":
		c.stats.misses.Add(1)
	case "hit", "revalidated", "stale", "ratelimit_skip":
		c.stats.hits.Add(1)
	}
}

// servedBytes and fetchedBytes count blob bytes, for metrics and Stats.
func (c *Cache) servedBytes(source string, n int64) {
	c.metrics.bytes.WithLabelValues(source).Add(float64(n))
	c.stats.served.Add(n)
}

func (c *Cache) fetchedBytes(n int64) {
	c.metrics.fetched.Add(float64(n))
	c.stats.fetched.Add(n)
}
