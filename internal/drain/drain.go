// Package drain counts the HTTP handlers in flight, so that a server's
// shutdown can wait for every one of them to return before it closes what
// they use (the cache, the store). It imports no project package.
package drain

import (
	"context"
	"fmt"
	"net/http"
	"sync"
)

// Handlers counts the requests running under its Track. The zero value is
// ready; safe for concurrent use. Once Wait has been called it admits no
// new request: those are answered 503 at once.
type Handlers struct {
	mu      sync.Mutex
	running int
	closed  bool
	idle    chan struct{} // made by Wait, closed when running drops to 0
}

// Track returns h counted.
func (d *Handlers) Track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.enter() {
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAVAILABLE","message":"the server is shutting down"}]}`))
			return
		}
		defer d.leave()
		h.ServeHTTP(w, r)
	})
}

func (d *Handlers) enter() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.running++
	return true
}

func (d *Handlers) leave() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running--; d.running == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
}

// Wait stops admitting requests and waits until every running handler has
// returned, or ctx ends: then it says how many still run.
func (d *Handlers) Wait(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	if d.running == 0 {
		d.mu.Unlock()
		return nil
	}
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		d.mu.Lock()
		defer d.mu.Unlock()
		return fmt.Errorf("%d handlers still running: %w", d.running, ctx.Err())
	}
}
