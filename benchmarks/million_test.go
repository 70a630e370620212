package benchmarks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/storage"
)

// The million-blob fixture (issue 5): a data directory holding
// CAIRN_BENCH_MILLION small blobs, files and metadata. It is built once per
// run, and only when that variable is set (`make bench` sets 1000000), so
// the benchmark smoke pass in CI skips it. Building it takes a while: the
// blob files are written straight into blobs/, then one storage.Open after
// an "unclean stop" adopts them all (re-hash, record), the full walk a real
// crash would cause, and a clean Close. CAIRN_BENCH_DIR picks the parent
// directory (default: the system temp dir); the fixture is removed at the
// end of the run.

var million struct {
	once    sync.Once
	dir     string
	digests []string
	err     error
}

// fixtureBlob is blob i's content: all the same size, for exact eviction
// targets.
func fixtureBlob(i int) []byte { return fmt.Appendf(nil, "cairn benchmark blob %09d\n", i) }

// millionFixture returns the fixture's data dir and digests, building it on
// first use; it skips the benchmark when CAIRN_BENCH_MILLION is unset.
func millionFixture(b *testing.B) (string, []string) {
	b.Helper()
	n, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_MILLION"))
	if n <= 0 {
		b.Skip("the million-blob fixture: set CAIRN_BENCH_MILLION=1000000 (make bench does)")
	}
	million.once.Do(func() { million.dir, million.digests, million.err = buildFixture(n) })
	if million.err != nil {
		b.Fatal(million.err)
	}
	return million.dir, million.digests
}

func buildFixture(n int) (string, []string, error) {
	start := time.Now()
	dir, err := os.MkdirTemp(os.Getenv("CAIRN_BENCH_DIR"), "cairn-million-")
	if err != nil {
		return "", nil, err
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256", fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return dir, nil, err
		}
	}
	digests := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				body := fixtureBlob(i)
				sum := sha256.Sum256(body)
				h := hex.EncodeToString(sum[:])
				digests[i] = "sha256:" + h
				if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", h[:2], h), body, 0o444); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return dir, nil, err
	}
	files := time.Since(start)
	s, err := storage.Open(dir) // no clean marker: adopts every file
	if err != nil {
		return dir, nil, err
	}
	used, blobs := s.Usage()
	if err := s.Close(); err != nil {
		return dir, nil, err
	}
	if blobs != n {
		return dir, nil, fmt.Errorf("fixture: %d blobs adopted, want %d", blobs, n)
	}
	fmt.Fprintf(os.Stderr, "million fixture: %d blobs (%d bytes) in %s: files %v, adoption (unclean start) %v\n",
		n, used, dir, files.Round(time.Millisecond), (time.Since(start) - files).Round(time.Millisecond))
	return dir, digests, nil
}

// removeFixture deletes the fixture, if one was built (TestMain).
func removeFixture() {
	if million.dir != "" {
		os.RemoveAll(million.dir)
	}
}

func openFixture(b *testing.B) (*storage.Store, []string) {
	b.Helper()
	dir, digests := millionFixture(b)
	s, err := storage.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s, digests
}

// BenchmarkMillionStartup: Open after a clean stop, with a million blobs
// (reconcile from directory listings; no stat or hash per file). Target
// under 3 s.
func BenchmarkMillionStartup(b *testing.B) {
	dir, _ := millionFixture(b)
	for b.Loop() {
		s, err := storage.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, n := s.Usage(); n < 1 {
			b.Fatal("no blobs after Open")
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMillionUncleanStartup: Open after an unclean stop (no clean
// marker), which walks blobs/ for files without metadata. No target; shown
// beside the clean start.
func BenchmarkMillionUncleanStartup(b *testing.B) {
	dir, _ := millionFixture(b)
	for b.Loop() {
		if err := os.Remove(filepath.Join(dir, "clean")); err != nil {
			b.Fatal(err)
		}
		s, err := storage.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMillionLookup: a blob's metadata by digest, digests drawn at
// random from the million, so the in-memory record cache mostly misses.
// Target under 10 µs.
func BenchmarkMillionLookup(b *testing.B) {
	s, digests := openFixture(b)
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := s.Stat(digests[r.IntN(len(digests))]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMillionAccessTracking: the share of the warm-hit path spent on
// access tracking, measured side by side in one run on the million-blob
// store: the hit through the API handler, then the tracking alone (Touch,
// plus the batched write to badger amortised over the touches). Target
// under 2%.
func BenchmarkMillionAccessTracking(b *testing.B) {
	s, digests := openFixture(b)
	hot := digests[:min(len(digests), 4096)]
	for _, d := range hot {
		if err := s.MarkShared(d); err != nil { // servable from an anonymous namespace
			b.Fatal(err)
		}
	}
	st := newStackOn(b, s, "http://127.0.0.1:1") // never asked: every hit is local
	reqs := make([]*http.Request, len(hot))
	for i, d := range hot {
		reqs[i] = httptest.NewRequest("GET", "/v2/library/bench/blobs/"+d, nil)
	}
	w := &discard{h: http.Header{}}
	var hit, track time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, req := range reqs {
			clear(w.h)
			st.handler.ServeHTTP(w, req)
		}
		t1 := time.Now()
		for _, d := range hot {
			s.Touch(d)
		}
		if err := s.FlushAccess(); err != nil {
			b.Fatal(err)
		}
		hit += t1.Sub(t0)
		track += time.Since(t1)
	}
	b.ReportMetric(float64(hit.Nanoseconds())/float64(b.N*len(reqs)), "ns/hit")
	b.ReportMetric(float64(track.Nanoseconds())/float64(b.N*len(reqs)), "ns/track")
	b.ReportMetric(100*float64(track)/float64(hit), "%tracking")
}

// BenchmarkMillionEvict10k: evicting 10,000 least-recently-used blobs out
// of the million (each iteration evicts another 10,000). Target under 5 s.
func BenchmarkMillionEvict10k(b *testing.B) {
	s, _ := openFixture(b)
	const batch = 10_000
	size := int64(len(fixtureBlob(0)))
	for b.Loop() {
		used, _ := s.Usage()
		evicted, err := s.Evict(used-batch*size, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(evicted) != batch {
			b.Fatalf("evicted %d blobs, want %d", len(evicted), batch)
		}
	}
}
