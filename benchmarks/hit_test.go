package benchmarks

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discard is a ResponseWriter that keeps nothing, so the benchmark counts
// the registry's and the cache's allocations, not a recorder's.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkWarmBlobHit serves a committed blob through the API handler
// (no network), full and ranged: the per-request cost of the hit path.
func BenchmarkWarmBlobHit(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		for _, rng := range []string{"", "bytes=100-199"} {
			b.Run(fmt.Sprintf("size=%d/range=%q", size, rng), func(b *testing.B) {
				s := newStack(b)
				dgst := s.origin.add(randomBlob(b, size))
				path := "/v2/library/bench/blobs/" + dgst
				warm(b, s.srv.URL+path)
				req := httptest.NewRequest("GET", path, nil)
				if rng != "" {
					req.Header.Set("Range", rng)
				}
				w := &discard{h: http.Header{}}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					s.handler.ServeHTTP(w, req)
				}
			})
		}
	}
}

func warm(b *testing.B, url string) {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("warm-up: status %d", resp.StatusCode)
	}
}
