package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
)

// RateLimit is the upstream's last word on its pull budget, from Docker
// Hub's ratelimit-limit and ratelimit-remaining headers ("100;w=21600": a
// count, and the window in seconds).
type RateLimit = oci.RateLimit

// rateLimits keeps the newest reading; safe for concurrent use.
type rateLimits struct {
	mu   sync.Mutex
	last RateLimit
	ok   bool
}

// RateLimit returns the newest reading, and false if the upstream never
// sent the headers.
func (c *Client) RateLimit() (RateLimit, bool) {
	c.limits.mu.Lock()
	defer c.limits.mu.Unlock()
	return c.limits.last, c.limits.ok
}

// noteRateLimit records the headers of a response, if it has them.
func (c *Client) noteRateLimit(h http.Header) {
	remaining, window, ok := parseRateLimit(h.Get("Ratelimit-Remaining"))
	if !ok {
		return
	}
	limit, _, _ := parseRateLimit(h.Get("Ratelimit-Limit"))
	rl := RateLimit{Limit: limit, Remaining: remaining, Window: window, Seen: c.opts.now()}
	c.limits.mu.Lock()
	c.limits.last, c.limits.ok = rl, true
	c.limits.mu.Unlock()
	c.opts.metrics.rateLimit(c.opts.metricsNS, rl)
}

// parseRateLimit reads "N" or "N;w=SECONDS".
func parseRateLimit(v string) (n int, window time.Duration, ok bool) {
	count, params, _ := strings.Cut(strings.TrimSpace(v), ";")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 0 {
		return 0, 0, false
	}
	for p := range strings.SplitSeq(params, ";") {
		if w, found := strings.CutPrefix(strings.TrimSpace(p), "w="); found {
			if secs, err := strconv.Atoi(w); err == nil && secs > 0 {
				window = time.Duration(secs) * time.Second
			}
		}
	}
	return n, window, true
}
