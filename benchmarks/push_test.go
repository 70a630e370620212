package benchmarks

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/registry"
	"github.com/cairn-mirror/cairn/storage"
)

// Pushes (issue 6): blobs uploaded through the real handler stack (the
// registry handler with the cache as its pusher, storage's durable upload
// sessions) over loopback HTTP, into a hosted namespace.

// bigPushes is true when the push benchmarks use their full sizes: with
// CAIRN_BENCH_BIG set, or in `make bench` (CAIRN_BENCH_MILLION of a
// million). The CI smoke pass (20,000) uses small blobs.
func bigPushes() bool {
	n, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_MILLION"))
	return os.Getenv("CAIRN_BENCH_BIG") != "" || n >= 1000000
}

// pushStack is a node with one hosted namespace, registry.internal (the
// default), whose handler takes pushes from anyone, and its data dir.
type pushStack struct {
	dir    string
	srv    *httptest.Server
	client *http.Client
}

// pushAnyone lets every client push: authorization is not what these
// benchmarks measure.
type pushAnyone struct{}

func (pushAnyone) Authorize(*http.Request, string, registry.Action) (string, error) {
	return "bench", nil
}

func newPushStack(b *testing.B) *pushStack {
	b.Helper()
	dir := b.TempDir()
	store, err := storage.Open(filepath.Join(dir, "data"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	ns := cache.Namespace{Name: "registry.internal", TagTTL: time.Minute, FillIdleTimeout: time.Minute}
	c, err := cache.New(store, []cache.Namespace{ns})
	if err != nil {
		b.Fatal(err)
	}
	router, err := route.NewRouter([]route.Namespace{{Name: "registry.internal", Default: true}})
	if err != nil {
		b.Fatal(err)
	}
	h, err := registry.New(router, c, registry.WithPusher(c), registry.WithAuthorizer(pushAnyone{}))
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	b.Cleanup(client.CloseIdleConnections)
	return &pushStack{dir: dir, srv: srv, client: client}
}

// do sends one request and wants status; it returns the Location header.
func (s *pushStack) do(method, path string, body io.Reader, length int64, status int, hdr ...string) (string, error) {
	req, err := http.NewRequest(method, s.srv.URL+path, body)
	if err != nil {
		return "", err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/octet-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != status {
		return "", fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, msg)
	}
	return resp.Header.Get("Location"), nil
}

// pushBlob is a blob of size bytes that is never held in memory whole: an
// 8-byte serial number, then a 16 MiB random block repeated. Each serial
// is a distinct blob, so no push finds its blob already stored.
type pushBlob struct {
	block []byte
	size  int64
}

func newPushBlob(b *testing.B, size int64) *pushBlob {
	return &pushBlob{block: randomBlob(b, 16<<20), size: size}
}

// reader returns blob serial's bytes.
func (p *pushBlob) reader(serial uint64) io.Reader {
	head := binary.BigEndian.AppendUint64(nil, serial)
	rest := p.size - int64(len(head))
	parts := []io.Reader{bytes.NewReader(head)}
	for ; rest > 0; rest -= int64(len(p.block)) {
		parts = append(parts, bytes.NewReader(p.block[:min(rest, int64(len(p.block)))]))
	}
	return io.MultiReader(parts...)
}

func (p *pushBlob) digest(b *testing.B, serial uint64) string {
	h := sha256.New()
	if _, err := io.Copy(h, p.reader(serial)); err != nil {
		b.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// writeHashSync is the ceiling of a push on this disk: r written to a new
// file in dir through the same 32 KiB copy, hashed on the way, fsynced.
func writeHashSync(dir string, r io.Reader, h hash.Hash) error {
	f, err := os.CreateTemp(dir, "ceiling-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return err
	}
	return f.Sync()
}

// BenchmarkPushMonolithic pushes one blob per iteration in a single POST
// ?digest= (1 GiB with CAIRN_BENCH_BIG or in `make bench`, else 16 MiB)
// and, in the same iteration, writes the same bytes with sha256 and fsync
// to a file on the same disk: the ceiling. ns/op and MB/s are the push's;
// ceiling_MB/s and push/ceiling compare the two side by side. The ceiling
// is one goroutine (hash, then write, then fsync); the push spreads the
// same work over the client and the server, so on 2 cores push/ceiling
// may pass 1 (1.1-1.4 on a 1 GiB push here).
func BenchmarkPushMonolithic(b *testing.B) {
	size := int64(16 << 20)
	if bigPushes() {
		size = 1 << 30
	}
	s := newPushStack(b)
	blob := newPushBlob(b, size)
	b.SetBytes(size)
	var push, ceiling time.Duration
	var serial uint64
	for b.Loop() {
		b.StopTimer()
		serial++
		dgst := blob.digest(b, serial)
		start := time.Now()
		h := sha256.New()
		if err := writeHashSync(s.dir, blob.reader(serial), h); err != nil {
			b.Fatal(err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != dgst {
			b.Fatalf("ceiling hashed %s, want %s", got, dgst)
		}
		ceiling += time.Since(start)
		b.StartTimer()

		start = time.Now()
		if _, err := s.do("POST", "/v2/bench/app/blobs/uploads/?digest="+dgst, blob.reader(serial), size, http.StatusCreated); err != nil {
			b.Fatal(err)
		}
		push += time.Since(start)
	}
	n := float64(serial) * float64(size) / 1e6
	b.ReportMetric(n/ceiling.Seconds(), "ceiling_MB/s")
	b.ReportMetric(n/push.Seconds(), "push_MB/s")
	b.ReportMetric(ceiling.Seconds()/push.Seconds(), "push/ceiling")
}

// BenchmarkPushChunkedConcurrent runs 64 chunked uploads at once (POST,
// four PATCHes with Content-Range, PUT ?digest=) of distinct blobs, 8 MiB
// each with CAIRN_BENCH_BIG or in `make bench`, else 1 MiB. Every request
// must succeed, and every blob must then be served at its size.
func BenchmarkPushChunkedConcurrent(b *testing.B) {
	const uploads, chunks = 64, 4
	size := int64(1 << 20)
	if bigPushes() {
		size = 8 << 20
	}
	s := newPushStack(b)
	blob := newPushBlob(b, size)
	b.SetBytes(uploads * size)
	var serial uint64
	for b.Loop() {
		b.StopTimer()
		digests := make([]string, uploads)
		for i := range digests {
			digests[i] = blob.digest(b, serial+uint64(i))
		}
		b.StartTimer()
		var wg sync.WaitGroup
		errs := make(chan error, uploads)
		for i := range uploads {
			wg.Go(func() { errs <- s.chunkedUpload(blob, serial+uint64(i), digests[i], chunks) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, d := range digests {
			s.checkServed(b, d, size)
		}
		serial += uploads
		b.StartTimer()
	}
}

// chunkedUpload uploads blob serial, of size bytes, in chunks PATCHes
// streamed from its reader, and commits it.
func (s *pushStack) chunkedUpload(blob *pushBlob, serial uint64, dgst string, chunks int) error {
	loc, err := s.do("POST", "/v2/bench/app/blobs/uploads/", nil, 0, http.StatusAccepted)
	if err != nil {
		return err
	}
	r := blob.reader(serial)
	step := (blob.size + int64(chunks) - 1) / int64(chunks)
	for off := int64(0); off < blob.size; off += step {
		n := min(step, blob.size-off)
		cr := fmt.Sprintf("%d-%d", off, off+n-1)
		if loc, err = s.do("PATCH", loc, io.LimitReader(r, n), n, http.StatusAccepted, "Content-Range", cr); err != nil {
			return err
		}
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	_, err = s.do("PUT", loc+sep+"digest="+dgst, nil, 0, http.StatusCreated)
	return err
}

// checkServed wants a HEAD of the blob to answer 200 with its size.
func (s *pushStack) checkServed(b *testing.B, dgst string, size int64) {
	b.Helper()
	resp, err := s.client.Head(s.srv.URL + "/v2/bench/app/blobs/" + dgst)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		b.Fatalf("HEAD pushed blob %s: status %d, %d bytes; want 200, %d", dgst, resp.StatusCode, resp.ContentLength, size)
	}
}
