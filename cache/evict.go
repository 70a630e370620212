package cache

import (
	"context"
	"time"

	"github.com/cairn-mirror/cairn/storage"
)

// Limit is the disk budget: past High x Max bytes of blobs, the least
// recently used are evicted until Low x Max remain. Max 0 means no cap.
type Limit struct {
	Max       int64
	High, Low float64
}

// WithLimit sets the disk budget (default: none).
func WithLimit(l Limit) Option { return func(c *Cache) { c.limit = l } }

// evictRetry is the first wait before evicting again when blobs being
// read kept usage over the mark; flushEvery is how often batched access
// times reach badger; pinRetry how often pinned images that could not be
// fetched (upstream down) are tried.
const (
	evictRetry = time.Second
	flushEvery = 30 * time.Second
	pinRetry   = 5 * time.Minute
)

// Run keeps the disk budget and flushes access times until ctx ends. It is
// woken after each commit that may have crossed the high mark, and again
// after an eviction that blobs being read kept over the mark: after
// evictRetry, doubling up to flushEvery while it stays short (pins alone
// may hold usage over the mark).
func (c *Cache) Run(ctx context.Context) error {
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := evictRetry
	for {
		select {
		case <-ctx.Done():
			return c.store.FlushAccess()
		case <-c.pressure:
		case <-retry.C:
		case <-tick.C:
			if err := c.store.FlushAccess(); err != nil {
				c.log.Warn("flushing access times", "err", err)
			}
		}
		if err := c.EnforceLimit(); err != nil {
			c.log.Warn("eviction", "err", err)
		}
		if c.evictShort.Load() {
			retry.Reset(backoff)
			backoff = min(2*backoff, flushEvery)
		} else {
			backoff = evictRetry
		}
	}
}

// EnforceLimit evicts least-recently-used blobs once usage passes the high
// mark, down to the low mark, never one being filled or read.
func (c *Cache) EnforceLimit() error {
	if c.limit.Max <= 0 {
		return nil
	}
	high := int64(float64(c.limit.Max) * c.limit.High)
	used, _ := c.store.Usage()
	if used <= high {
		c.evictShort.Store(false)
		return nil
	}
	_, err := c.evict(int64(float64(c.limit.Max)*c.limit.Low), "size")
	// Blobs being read are skipped: when that left usage over the mark,
	// Run tries again a little later.
	used, _ = c.store.Usage()
	c.evictShort.Store(used > high)
	return err
}

// evict removes least-recently-used blobs, never one being filled or read,
// until usage is at most target, and counts them by reason. One eviction
// runs at a time (the budget's and a full disk's).
func (c *Cache) evict(target int64, reason string) ([]storage.Evicted, error) {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	used, _ := c.store.Usage()
	evicted, err := c.store.Evict(target, c.busy)
	digests := make([]string, 0, len(evicted))
	for _, e := range evicted {
		c.manifests.Remove(e.Digest)
		c.metrics.evictions.WithLabelValues(reason).Inc()
		digests = append(digests, e.Digest)
	}
	if named, nerr := c.store.StillNamed(digests); nerr == nil {
		c.metrics.evictedNamed.Add(float64(len(named))) // fetched again on demand
	}
	if len(evicted) > 0 {
		after, _ := c.store.Usage()
		c.log.Info("evicted least recently used blobs", "reason", reason, "blobs", len(evicted), "bytes_before", used, "bytes", after)
	}
	return evicted, err
}

// committed notes a new blob: the evictor may have work.
func (c *Cache) committed() {
	if c.limit.Max <= 0 {
		return
	}
	select {
	case c.pressure <- struct{}{}:
	default: // already signalled
	}
}

// acquire and release mark a committed blob as being read.
func (c *Cache) acquire(dgst string) {
	c.useMu.Lock()
	c.inUse[dgst]++
	c.useMu.Unlock()
}

func (c *Cache) release(dgst string) {
	c.useMu.Lock()
	if c.inUse[dgst]--; c.inUse[dgst] <= 0 {
		delete(c.inUse, dgst)
	}
	c.useMu.Unlock()
}

// Busy reports whether dgst is being filled or read right now; what
// removes blobs from outside the cache (an admin prune) spares those.
func (c *Cache) Busy(dgst string) bool { return c.busy(dgst) }

// busy: being filled or read right now, so not to be evicted.
func (c *Cache) busy(dgst string) bool {
	c.mu.Lock()
	_, filling := c.inflight[dgst]
	c.mu.Unlock()
	c.useMu.Lock()
	defer c.useMu.Unlock()
	return filling || c.inUse[dgst] > 0
}
