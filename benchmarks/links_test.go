package benchmarks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/storage"
)

// BenchmarkLinks (issue 14): in a store holding CAIRN_BENCH_MILLION links
// of unrelated digests (`make bench` sets 1000000, the smoke pass in
// `make test` 20000; unset, it is skipped), the cost of what reads one
// digest's links. Target: Remove of a blob with ten links under 10 ms.
// The fixture is built through the public API (Link, from linkWorkers
// goroutines, whose synced commits badger groups), in a fresh data dir
// under CAIRN_BENCH_DIR, removed at the end.
func BenchmarkLinks(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_MILLION"))
	if n <= 0 {
		b.Skip("the million-link store: set CAIRN_BENCH_MILLION=1000000 (make bench does)")
	}
	s := linksFixture(b, n)
	const holders = 10
	seq := 0
	// newLinked stores a new blob and links it into holders repositories.
	newLinked := func(b *testing.B) string {
		b.Helper()
		seq++
		d := writeBlob(b, s, fmt.Appendf(nil, "linked blob %d %d", seq, time.Now().UnixNano()))
		for i := range holders {
			if err := s.Link("docker.io", fmt.Sprintf("team/holder%02d", i), d, storage.LinkServed); err != nil {
				b.Fatal(err)
			}
		}
		return d
	}
	// Remove: the blob, its record and its ten links, one transaction.
	b.Run("Remove", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			d := newLinked(b)
			b.StartTimer()
			if err := s.Remove(d); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if ok, err := s.Linked("docker.io", "team/holder00", d); err != nil || ok {
				b.Fatalf("Linked after Remove = %v, %v; want false", ok, err)
			}
			b.StartTimer()
		}
	})
	// UnlinkAll: the DELETE path, ten Unlinks (each reading the digest's
	// other links) and RemoveUnreferenced (hasLinks): eleven transactions.
	b.Run("UnlinkAll", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			d := newLinked(b)
			b.StartTimer()
			for i := range holders {
				if _, err := s.Unlink("docker.io", fmt.Sprintf("team/holder%02d", i), d); err != nil {
					b.Fatal(err)
				}
			}
			if removed, err := s.RemoveUnreferenced(d); err != nil || !removed {
				b.Fatalf("RemoveUnreferenced = %v, %v; want removed", removed, err)
			}
		}
	})
	// Holders: LinkHolders of a blob with ten links (an anonymous mount).
	b.Run("Holders", func(b *testing.B) {
		d := newLinked(b)
		b.ResetTimer()
		for range b.N {
			if hs, err := s.LinkHolders(d); err != nil || len(hs) != holders {
				b.Fatalf("LinkHolders = %d, %v; want %d", len(hs), err, holders)
			}
		}
	})
}

// linkWorkers is how many goroutines build the link fixture.
const linkWorkers = 64

// linksFixture opens a store in a fresh data dir holding n links, one per
// digest (not stored), spread over 1000 repositories; both go at cleanup.
func linksFixture(b *testing.B, n int) *storage.Store {
	b.Helper()
	dir, err := os.MkdirTemp(os.Getenv("CAIRN_BENCH_DIR"), "cairn-links-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	s, err := storage.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, linkWorkers)
	for w := range linkWorkers {
		wg.Go(func() {
			for i := w; i < n; i += linkWorkers {
				sum := sha256.Sum256(fmt.Appendf(nil, "unrelated %d", i))
				d := "sha256:" + hex.EncodeToString(sum[:])
				if err := s.Link("docker.io", fmt.Sprintf("library/repo%03d", i%1000), d, storage.LinkServed); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "link fixture: %d links in %v\n", n, time.Since(start).Round(time.Millisecond))
	return s
}

// writeBlob commits body as a layer and returns its digest.
func writeBlob(b *testing.B, s *storage.Store, body []byte) string {
	b.Helper()
	sum := sha256.Sum256(body)
	d := "sha256:" + hex.EncodeToString(sum[:])
	w, err := s.NewWriter(d, int64(len(body)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Commit(storage.KindLayer, "application/octet-stream"); err != nil {
		b.Fatal(err)
	}
	return d
}
