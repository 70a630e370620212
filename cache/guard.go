package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// errCircuitOpen answers requests that would need an origin whose
// circuit breaker is open.
var errCircuitOpen = errors.New("circuit open after repeated failures")

// guard runs one call to an origin under its breaker and a timeout.
func (c *Cache) guard(ctx context.Context, cand candidate, timeout time.Duration, call func(context.Context) error) error {
	b := cand.breaker
	if !b.Allow(c.now()) {
		return fmt.Errorf("%s %s: %w: %w", cand.kind, cand.name, errCircuitOpen, ocierr.Unavailable)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := call(ctx)
	if errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errIdle) {
		err = fmt.Errorf("%w: %w", errIdle, ocierr.Unavailable) // the upstream stalled
	}
	b.Record(err, c.now())
	return err
}

// shared runs call once for every concurrent caller with the same key (one
// upstream request for a herd). The call runs detached from any one
// caller's context, so the first client leaving does not fail the others;
// the guard's timeouts bound it. Like a fill, it is counted for Close, ends
// when Close begins, and never starts after: its writes to the store
// (a manifest, a link) cannot outlive the store. Each caller still stops
// waiting when its own ctx ends.
func shared[T any](ctx context.Context, c *Cache, key string, call func(context.Context) (T, error)) (T, error) {
	ch := c.flights.DoChan(key, func() (any, error) {
		if !c.enter() {
			return nil, fmt.Errorf("%w: %w", ErrClosed, ocierr.Unavailable)
		}
		defer c.fills.Done()
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		defer context.AfterFunc(c.root, cancel)()
		return call(cctx)
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(T)
		return v, r.Err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// enter counts one piece of detached work for Close, or reports that Close
// has begun and nothing may start.
func (c *Cache) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.fills.Add(1)
	return true
}

// rateLimited reports whether ns's upstream said its pull budget is under
// the configured floor, within the window it gave.
func (c *Cache) rateLimited(ns *Namespace) bool {
	rlo, ok := ns.Origin.(RateLimiter)
	if ns.RateLimitFloor <= 0 || !ok {
		return false
	}
	rl, ok := rlo.RateLimit()
	return ok && rl.Remaining < ns.RateLimitFloor && c.now().Before(rl.Seen.Add(rl.Window))
}
