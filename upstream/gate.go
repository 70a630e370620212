package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

const (
	// defaultPause is how long a 429 without a Retry-After pauses its
	// kind of request.
	defaultPause = 30 * time.Second
	// maxPause caps a Retry-After: an upstream cannot silence a kind of
	// request for longer.
	maxPause = time.Hour
	// busyRetryAfter is the Retry-After of a request refused because a
	// local limit was reached.
	busyRetryAfter = time.Second
)

// gate holds an endpoint's politeness: at most maxConns requests in
// flight, at most rps started per second, and each kind of request (op)
// paused for the Retry-After of a 429 it received. Nothing queues without
// bound: a request waits for maxWait at most.
type gate struct {
	slots   chan struct{} // nil: unlimited
	rate    *rate.Limiter // nil: unlimited
	maxWait time.Duration
	now     func() time.Time

	mu     sync.Mutex
	paused map[string]time.Time // by op: until when
}

func newGate(maxConns int, rps float64, maxWait time.Duration, now func() time.Time) *gate {
	g := &gate{maxWait: maxWait, now: now, paused: make(map[string]time.Time)}
	if maxConns > 0 {
		g.slots = make(chan struct{}, maxConns)
	}
	if rps > 0 {
		g.rate = rate.NewLimiter(rate.Limit(rps), max(1, int(rps)))
	}
	return g
}

// BusyError answers a request cairn did not send because the endpoint's
// limits were reached or its kind of request is paused. It wraps
// ocierr.ErrBusy (circuit breakers ignore it) and Code: Unavailable for a
// full endpoint, TooManyRequests for a pause.
type BusyError struct {
	Namespace, Endpoint, Op string
	Code                    ocierr.Code
	Reason                  string
	Retry                   time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("upstream %s (endpoint %s): %s not sent: %s", e.Namespace, e.Endpoint, e.Op, e.Reason)
}

// Unwrap gives the code and ocierr.ErrBusy.
func (e *BusyError) Unwrap() []error { return []error{e.Code, ocierr.ErrBusy} }

// RetryAfter is when to come back; the registry passes it to the client.
func (e *BusyError) RetryAfter() time.Duration { return e.Retry }

// enter admits one request of kind op, waiting for a slot and the rate
// for maxWait at most (or ctx's deadline, if sooner). The returned release
// frees the slot; call it once the response body is closed.
func (c *Client) enter(ctx context.Context, op string) (release func(), err error) {
	g := c.gate
	if until, paused := g.pausedUntil(op); paused {
		c.opts.metrics.refused(c.opts.metricsNS, c.endpoint, op, "paused")
		return nil, &BusyError{Namespace: c.namespace, Endpoint: c.endpoint, Op: op, Code: ocierr.TooManyRequests,
			Reason: fmt.Sprintf("paused until %s after a 429 from the endpoint", until.UTC().Format(time.RFC3339)), Retry: until.Sub(g.now())}
	}
	if g.slots == nil && g.rate == nil {
		return func() {}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, g.maxWait)
	defer cancel()
	busy := func(reason string) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.opts.metrics.refused(c.opts.metricsNS, c.endpoint, op, reason)
		return &BusyError{Namespace: c.namespace, Endpoint: c.endpoint, Op: op, Code: ocierr.Unavailable,
			Reason: "waited " + g.maxWait.String() + " for " + reason, Retry: busyRetryAfter}
	}
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		case <-wctx.Done():
			return nil, busy("max_connections")
		}
	}
	release = sync.OnceFunc(func() {
		if g.slots != nil {
			<-g.slots
		}
	})
	if g.rate != nil {
		if err := g.rate.Wait(wctx); err != nil {
			release()
			return nil, busy("max_requests_per_second")
		}
	}
	return release, nil
}

// pausedUntil reports whether op is paused now, and until when.
func (g *gate) pausedUntil(op string) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.paused[op]
	if !ok {
		return time.Time{}, false
	}
	if !g.now().Before(until) {
		delete(g.paused, op)
		return time.Time{}, false
	}
	return until, true
}

// pause stops requests of kind op for d (a 429's Retry-After), and
// returns until when.
func (g *gate) pause(op string, d time.Duration) time.Time {
	if d <= 0 {
		d = defaultPause
	}
	until := g.now().Add(min(d, maxPause))
	g.mu.Lock()
	defer g.mu.Unlock()
	if until.After(g.paused[op]) {
		g.paused[op] = until
	}
	return g.paused[op]
}

// noteTooMany pauses op when err is the endpoint's 429.
func (c *Client) noteTooMany(op string, err error) {
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests {
		return
	}
	until := c.gate.pause(op, se.Retry)
	c.opts.metrics.pausedUntil(c.opts.metricsNS, c.endpoint, op, until)
	c.opts.logger.Warn("upstream answered 429: pausing this kind of request at the endpoint", "upstream", c.namespace,
		"endpoint", c.endpoint, "op", op, "until", until.UTC().Format(time.RFC3339))
}

// releasingBody frees the request's slot when the body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}
