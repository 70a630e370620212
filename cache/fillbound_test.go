package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// stepping is go-containerregistry's registry behind a handler whose blob
// GETs send at most step body bytes each and then hang until the client
// gives up, as a slow link would. It records each blob GET's Range header
// and turns an open-ended one ("bytes=N-", which that registry does not
// parse) into the closed range it means.
type stepping struct {
	srv  *httptest.Server
	reg  http.Handler
	step int

	mu     sync.Mutex
	ranges []string // one per blob GET, "" for none
}

func newStepping(t *testing.T, step int) *stepping {
	t.Helper()
	s := &stepping{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0))), step: step}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stepping) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
		s.reg.ServeHTTP(w, r)
		return
	}
	rng := r.Header.Get("Range")
	s.mu.Lock()
	s.ranges = append(s.ranges, rng)
	s.mu.Unlock()
	if from, open := strings.CutSuffix(rng, "-"); open {
		head := httptest.NewRecorder()
		s.reg.ServeHTTP(head, httptest.NewRequest(http.MethodHead, r.URL.Path, nil))
		r.Header.Set("Range", fmt.Sprintf("%s-%d", from, head.Result().ContentLength-1))
	}
	s.reg.ServeHTTP(&steppingWriter{ResponseWriter: w, left: s.step, done: r.Context().Done()}, r)
}

func (s *stepping) gets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// steppingWriter sends the status at once, then left body bytes, then
// blocks until done.
type steppingWriter struct {
	http.ResponseWriter
	left int
	done <-chan struct{}
}

func (w *steppingWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *steppingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p[:min(len(p), w.left)])
	w.left -= n
	http.NewResponseController(w.ResponseWriter).Flush()
	if err == nil && n < len(p) {
		<-w.done
		err = errors.New("client gone")
	}
	return n, err
}

// seedLayer pushes an image with one layer of size bytes to the upstream
// and returns that layer's digest and bytes.
func seedLayer(t *testing.T, s *stepping, size int64) (string, []byte) {
	t.Helper()
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(s.srv.URL, "http://")+"/library/slow:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.ranges = nil // the seeding client's
	s.mu.Unlock()
	return layerOf(t, img)
}

func layerOf(t *testing.T, img v1.Image) (string, []byte) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), b
}

// fillBoundEnv is a cache over a stepping upstream, with fill_max_duration
// bound and an idle timeout well above it.
func fillBoundEnv(t *testing.T, step int, bound time.Duration) (*cache.Cache, *stepping) {
	t.Helper()
	s := newStepping(t, step)
	c, _, _ := cacheOver(t, s.srv.URL, func(ns *cache.Namespace) { ns.FillIdleTimeout = 5 * time.Second },
		cache.WithFillBound(bound))
	return c, s
}

func readBlob(t *testing.T, c *cache.Cache, dgst string) ([]byte, error) {
	t.Helper()
	b, err := c.OpenBlob(t.Context(), repo("library/slow"), dgst)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var buf bytes.Buffer
	_, err = b.WriteRange(t.Context(), &buf, 0, b.Size())
	return buf.Bytes(), err
}

// A fill whose upstream requests each run past fill_max_duration resumes
// each cut with Range from where it stopped, and completes: one request
// per cut, more cuts than the resumes allowed for failures, since every
// cut moved the fill forward.
func TestFillCutByMaxDurationResumesWithRange(t *testing.T) {
	const step = 48 << 10
	c, s := fillBoundEnv(t, step, 250*time.Millisecond)
	dgst, want := seedLayer(t, s, 5*step+1000)
	got, err := readBlob(t, c, dgst)
	if err != nil {
		t.Fatalf("reading the blob: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want the %d of the layer", len(got), len(want))
	}
	var wantRanges []string
	for at := 0; at < len(want); at += step {
		r := ""
		if at > 0 {
			r = fmt.Sprintf("bytes=%d-", at)
		}
		wantRanges = append(wantRanges, r)
	}
	if gets := s.gets(); fmt.Sprint(gets) != fmt.Sprint(wantRanges) {
		t.Errorf("blob GETs with Range %q, want %q (one per cut)", gets, wantRanges)
	}
	if got, err := readBlob(t, c, dgst); err != nil || !bytes.Equal(got, want) {
		t.Errorf("reading the committed blob: %d bytes, %v", len(got), err)
	}
	if n := len(s.gets()); n != len(wantRanges) {
		t.Errorf("%d blob GETs after a warm read, want %d", n, len(wantRanges))
	}
}

// A cut that moved the fill nowhere counts against the resumes, like a
// dropped body: the fill gives up after them instead of asking for ever.
func TestFillCutWithoutProgressGivesUp(t *testing.T) {
	c, s := fillBoundEnv(t, 0, 100*time.Millisecond)
	dgst, _ := seedLayer(t, s, 4096)
	if _, err := readBlob(t, c, dgst); !errors.Is(err, ocierr.Unavailable) {
		t.Fatalf("reading a blob that never comes: %v, want UNAVAILABLE", err)
	}
	if gets := s.gets(); len(gets) != 4 {
		t.Errorf("%d blob GETs (%q), want 4: the first and 3 resumes", len(gets), gets)
	}
}

// After Close no fill starts: a miss is refused at once, with a clear
// error, and the upstream is not asked.
func TestNoFillStartsAfterClose(t *testing.T) {
	e := newEnv(t, nil)
	img := image(t)
	e.o.push(t, "library/slow", "v1", img)
	dgst, _ := layerOf(t, img)
	e.c.Close()
	_, err := readBlob(t, e.c, dgst)
	if !errors.Is(err, cache.ErrClosed) || !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("a miss after Close: %v, want ErrClosed and UNAVAILABLE", err)
	}
	if n := e.o.count("GET /blobs/"); n != 0 {
		t.Errorf("%d upstream blob GETs after Close, want none", n)
	}
}

// A manifest fetch is detached work like a fill: none starts after Close,
// so nothing writes to the store once it may be closing.
func TestNoManifestFetchStartsAfterClose(t *testing.T) {
	e := newEnv(t, nil)
	e.o.push(t, "library/a", "v1", image(t))
	e.c.Close()
	_, err := e.c.Manifest(t.Context(), repo("library/a"), "v1", nil)
	if !errors.Is(err, cache.ErrClosed) || !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("a manifest miss after Close: %v, want ErrClosed and UNAVAILABLE", err)
	}
	if n := e.o.count("GET /manifests/") + e.o.count("HEAD /manifests/"); n != 0 {
		t.Errorf("%d upstream manifest requests after Close, want none", n)
	}
}

// Close ends a manifest fetch in flight and waits for it, instead of
// leaving it to write after the store closed: with the upstream hanging,
// Close returns long before the request timeout (an hour here).
func TestCloseEndsAManifestFetchInFlight(t *testing.T) {
	e := newEnv(t, func(ns *cache.Namespace) { ns.RequestTimeout = time.Hour })
	e.o.push(t, "library/a", "v1", image(t))
	e.o.set(func(o *origin) { o.hang = true })
	done := make(chan error, 1)
	go func() {
		_, err := e.c.Manifest(context.Background(), repo("library/a"), "v1", nil)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.o.count("GET /manifests/")+e.o.count("HEAD /manifests/") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upstream never saw the manifest request")
		}
		time.Sleep(5 * time.Millisecond) // polling, under the deadline above
	}
	closed := make(chan struct{})
	go func() { e.c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waiting after 10 s on a hanging manifest fetch")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the manifest fetch cut by Close succeeded, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the manifest fetch still hangs 10 s after Close returned: Close neither ended nor waited for it")
	}
}
