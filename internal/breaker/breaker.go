// Package breaker is the circuit breaker cairn keeps for each origin it
// reads from: a namespace's upstream, each of its endpoints, each peer.
package breaker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// Breaker opens after Threshold outages in a row, for Cooldown: callers
// skip the origin (answer from the cache, or try the next). Then one call
// at a time probes it; a success closes it. Only outages count (errors
// wrapping ocierr.Unavailable): a 404, 401 or 429 means the origin is
// alive. A caller's cancellation and ocierr.ErrBusy (a local limit, the
// origin never asked) say nothing about the origin. Safe for concurrent
// use.
type Breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// New returns a closed breaker; a threshold below 1 is 1.
func New(threshold int, cooldown time.Duration) *Breaker {
	return &Breaker{threshold: max(threshold, 1), cooldown: cooldown}
}

// Allow reports whether a call may go to the origin now. A true answer
// while the breaker is open makes the caller the probe: it must Record.
func (b *Breaker) Allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// Record notes a call's outcome.
func (b *Breaker) Record(err error, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false // whatever happened, the probe is over
	if errors.Is(err, context.Canceled) || errors.Is(err, ocierr.ErrBusy) {
		return
	}
	if !errors.Is(err, ocierr.Unavailable) {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
	}
}

// Open reports whether the breaker is open at now (for metrics and logs).
func (b *Breaker) Open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= b.threshold && now.Before(b.openUntil)
}
