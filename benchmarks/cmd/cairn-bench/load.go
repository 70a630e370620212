package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// newLoadClient is an HTTP client for one server's load: keep-alive
// connections for up to 64 concurrent clients, no compression.
func newLoadClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 128,
		DisableCompression:  true,
		ReadBufferSize:      64 * kib,
	}}
}

// newArrivalClient is newLoadClient over connections that record when
// each read's bytes reached this host (arrival.go).
func newArrivalClient() *http.Client {
	hc := newLoadClient()
	hc.Transport.(*http.Transport).DialContext = dialArrival
	return hc
}

// loadResult is what a bounded loop of GETs achieved.
type loadResult struct {
	elapsed   time.Duration
	bytes     int64           // body bytes read, partial bodies included
	completed int             // whole responses
	latencies []time.Duration // of whole responses, sorted, when kept
}

func (r loadResult) mbps() float64 { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }
func (r loadResult) rps() float64  { return float64(r.completed) / r.elapsed.Seconds() }

// quantile of the sorted latencies, in milliseconds.
func (r loadResult) quantileMS(q float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)-1))
	return float64(r.latencies[i]) / float64(time.Millisecond)
}

// errDeadline ends a loop's last request when its time is up.
var errDeadline = errors.New("loop time is up")

// loop runs clients goroutines that GET url over and over for d, each
// response read whole and checked to be size bytes with status 200 (size
// < 0: any size). keepLatency records each response's latency. It stops
// early, with an error, at the first failure.
func loop(ctx context.Context, hc *http.Client, url string, header http.Header, clients int, d time.Duration, size int64, keepLatency bool) (loadResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline := time.Now().Add(d)
	ctx, stop := context.WithDeadlineCause(ctx, deadline, errDeadline)
	defer stop()

	var (
		bytes     atomic.Int64
		completed atomic.Int64
		mu        sync.Mutex
		lat       []time.Duration
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			buf := make([]byte, 256*kib)
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := get(ctx, hc, url, header, buf, &bytes)
				if err != nil {
					if context.Cause(ctx) != errDeadline {
						cancel(err)
					}
					return
				}
				if size >= 0 && n != size {
					cancel(fmt.Errorf("GET %s: %d bytes, want %d", url, n, size))
					return
				}
				completed.Add(1)
				if keepLatency {
					mine = append(mine, time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	r := loadResult{elapsed: min(time.Since(start), d), bytes: bytes.Load(), completed: int(completed.Load()), latencies: lat}
	slices.Sort(r.latencies)
	if err := context.Cause(ctx); err != nil && err != errDeadline {
		return r, err
	}
	return r, nil
}

// get reads one response to url into buf, adding what it reads to
// counter as it goes, and returns the body's length.
func get(ctx context.Context, hc *http.Client, url string, header http.Header, buf []byte, counter *atomic.Int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	var total int64
	for {
		n, err := resp.Body.Read(buf)
		total += int64(n)
		counter.Add(int64(n))
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
