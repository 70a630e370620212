package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// slowUpstream is go-containerregistry's registry behind a handler whose
// blob GETs send at most step body bytes each, then hang until the client
// gives up. It records each blob GET's Range header, and closes an
// open-ended one ("bytes=N-", which that registry does not parse).
type slowUpstream struct {
	srv  *httptest.Server
	reg  http.Handler
	step int

	mu     sync.Mutex
	ranges []string
}

func newSlowUpstream(t *testing.T, step int) *slowUpstream {
	t.Helper()
	u := &slowUpstream{reg: registry.New(registry.Logger(nopLogger())), step: step}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *slowUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
		u.reg.ServeHTTP(w, r)
		return
	}
	rng := r.Header.Get("Range")
	u.mu.Lock()
	u.ranges = append(u.ranges, rng)
	u.mu.Unlock()
	if from, open := strings.CutSuffix(rng, "-"); open {
		head := httptest.NewRecorder()
		u.reg.ServeHTTP(head, httptest.NewRequest(http.MethodHead, r.URL.Path, nil))
		r.Header.Set("Range", fmt.Sprintf("%s-%d", from, head.Result().ContentLength-1))
	}
	u.reg.ServeHTTP(&stepWriter{ResponseWriter: w, left: u.step, done: r.Context().Done()}, r)
}

func (u *slowUpstream) gets() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.ranges...)
}

// stepWriter sends left body bytes, then blocks until done.
type stepWriter struct {
	http.ResponseWriter
	left int
	done <-chan struct{}
}

func (w *stepWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p[:min(len(p), w.left)])
	w.left -= n
	http.NewResponseController(w.ResponseWriter).Flush()
	if err == nil && n < len(p) {
		<-w.done
		err = errors.New("client gone")
	}
	return n, err
}

// With cache.fill_max_duration set, a pull whose upstream requests each
// run past it arrives whole: every cut resumes with Range from where the
// fill stopped, one upstream request per cut, far more cuts than the
// resumes a failing fill gets.
func TestFillMaxDurationResumesThroughTheAPI(t *testing.T) {
	const step = 32 << 10
	up := newSlowUpstream(t, step)
	img := randomImage(t, 6*step, 1)
	ref, err := name.ParseReference(up.srv.Listener.Addr().String()+"/library/slow:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	want := layerBytes(t, layers[0])
	dgst := mustDigest(t, layers[0])
	up.mu.Lock()
	up.ranges = nil // the seeding client's
	up.mu.Unlock()

	n := startNode(t, testConfig(t, t.TempDir(), up.srv.Listener.Addr().String(), "127.0.0.1:9",
		"cache: {fill_max_duration: 200ms, fill_idle_timeout: 10s}"))
	resp, got := get(t, "GET", n.url("/v2/library/slow/blobs/"+dgst))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("GET the blob: status %d, %d bytes; want 200 and the %d of the layer", resp.StatusCode, len(got), len(want))
	}
	var wantRanges []string
	for at := 0; at < len(want); at += step {
		r := ""
		if at > 0 {
			r = fmt.Sprintf("bytes=%d-", at)
		}
		wantRanges = append(wantRanges, r)
	}
	if gets := up.gets(); fmt.Sprint(gets) != fmt.Sprint(wantRanges) {
		t.Errorf("upstream blob GETs with Range %q, want %q (one per cut)", gets, wantRanges)
	}
}
