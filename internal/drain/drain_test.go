package drain

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// blocking is a handler that reports it started and returns when told.
func blocking(started chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
}

func serve(h http.Handler) <-chan int {
	done := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		done <- rec.Code
	}()
	return done
}

func TestWaitReturnsOnlyAfterTheRunningHandlers(t *testing.T) {
	var d Handlers
	started, release := make(chan struct{}), make(chan struct{})
	done := serve(d.Track(blocking(started, release)))
	<-started
	waited := make(chan error, 1)
	go func() { waited <- d.Wait(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) while a handler was running", err)
	case <-time.After(100 * time.Millisecond): // a negative check: nothing may happen
	}
	close(release)
	if code := <-done; code != http.StatusNoContent {
		t.Errorf("the running handler answered %d, want 204", code)
	}
	if err := <-waited; err != nil {
		t.Errorf("Wait: %v, want nil once the handler returned", err)
	}
}

func TestWaitRefusesRequestsThatArriveAfter(t *testing.T) {
	var d Handlers
	if err := d.Wait(context.Background()); err != nil {
		t.Fatalf("Wait with nothing running: %v", err)
	}
	ran := false
	h := d.Track(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
	if code := <-serve(h); code != http.StatusServiceUnavailable || ran {
		t.Errorf("a request after Wait: status %d, handler ran %v; want 503 and not run", code, ran)
	}
}

func TestWaitIsBoundedByItsContext(t *testing.T) {
	var d Handlers
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	serve(d.Track(blocking(started, release)))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past its deadline: %v, want %v", err, context.DeadlineExceeded)
	}
}
