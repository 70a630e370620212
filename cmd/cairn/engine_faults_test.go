package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// blobServer serves one blob; handler decides per GET number.
func blobServer(t *testing.T, data []byte, h func(n int, w http.ResponseWriter, r *http.Request)) (host string, gets func() int) {
	dgst := digestOf(data)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+dgst) {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}`, 404)
			return
		}
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			return
		}
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		h(k, w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// An upstream that answers Content-Length: 0 for a blob that has bytes:
// the empty body fails verification, so the client gets 503 UNAVAILABLE
// (not a clean, empty 200), nothing is stored, and the fill asked the
// upstream once (an empty body that ended cleanly is not resumed).
func TestZeroContentLengthForABlobWithBytesIsUnavailable(t *testing.T) {
	data := randBytes(t, 1000)
	host, gets := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
	})
	dataDir := t.TempDir()
	n := startNode(t, testConfig(t, dataDir, host, host))
	resp, body := get(t, "GET", n.url("/v2/library/x/blobs/"+digestOf(data)))
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"code":"UNAVAILABLE"`)) {
		t.Errorf("status %d, body %.120q; want 503 UNAVAILABLE", resp.StatusCode, body)
	}
	if g := gets(); g != 1 {
		t.Errorf("%d upstream GETs, want 1", g)
	}
	assertNothingStored(t, dataDir)
}

// assertNothingStored fails the test if a blob or a temp file is left
// under dataDir.
func assertNothingStored(t *testing.T, dataDir string) {
	t.Helper()
	if files := blobFiles(t, dataDir); len(files) != 0 {
		t.Errorf("blobs/ holds %v after fills that failed", files)
	}
	if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ holds %v after fills that failed", left)
	}
}

// A source that ignores Range on resume sends the blob from byte 0 again:
// the fill skips the head it already has, and the idle clock restarts with
// each read of that head, so a source that keeps sending (128 KiB every
// 100 ms: 3 MiB to skip take 2.4 s under a 1 s idle timeout) is live. The
// client gets the whole blob after one resume (two upstream GETs), and it
// is stored. (The skip once ran under one idle timer for the whole head.)
func TestSkippingTheHeadOfAnUnrangedResumeIsNotIdle(t *testing.T) {
	data := randBytes(t, 4<<20)
	dropAt := 3 << 20
	host, gets := blobServer(t, data, func(k int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if k == 1 {
			w.Write(data[:dropAt])
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		// Range ignored; steady: 128 KiB every 100 ms (far inside the 1 s idle timeout)
		trickle(w, data, 128<<10, 100*time.Millisecond)
	})
	n, dataDir := startFaultyNode(t, &faulty{srv: &httptest.Server{URL: "http://" + host}}, time.Second)
	body, err := readBlob(n.url("/v2/library/x/blobs/" + digestOf(data)))
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("%d of %d bytes, err %v: the fill failed although the source never went idle for 1 s", len(body), len(data), err)
	}
	if g := gets(); g != 2 {
		t.Errorf("%d upstream GETs, want 2 (the dropped body and one resume)", g)
	}
	want := strings.TrimPrefix(digestOf(data), "sha256:")
	waitUntil(t, 10*time.Second, "the blob committed to blobs/", func() bool {
		return strings.Contains(strings.Join(blobFiles(t, dataDir), " "), want)
	})
}

// A fill writes its source in chunks of at least 256 KiB, but the idle
// clock restarts with every read: a source trickling 64 KiB every 300 ms
// (one chunk takes 1.2 s) is live under a 1 s idle timeout.
func TestTrickleSlowerThanAChunkIsNotIdle(t *testing.T) {
	data := randBytes(t, 512<<10)
	host, gets := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		trickle(w, data, 64<<10, 300*time.Millisecond)
	})
	n, _ := startFaultyNode(t, &faulty{srv: &httptest.Server{URL: "http://" + host}}, time.Second)
	body, err := readBlob(n.url("/v2/library/x/blobs/" + digestOf(data)))
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("%d of %d bytes, err %v: a source sending every 300 ms was taken for idle", len(body), len(data), err)
	}
	if g := gets(); g != 1 {
		t.Errorf("%d upstream GETs, want 1: the fill was resumed as if idle", g)
	}
}

// trickle sends data in steps of step bytes, each flushed, every pause,
// until the client goes.
func trickle(w http.ResponseWriter, data []byte, step int, pause time.Duration) {
	for off := 0; off < len(data); off += step {
		if _, err := w.Write(data[off:min(off+step, len(data))]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(pause)
	}
}

// 32 clients at once on a blob whose upstream answers Content-Length: 0:
// whether a client starts the fill, joins it while the empty body is
// verified, or comes after it failed, each gets 503 UNAVAILABLE, never a
// clean 200 (clients that joined the fill once got one, with no bytes).
// Each client costs at most one upstream GET and nothing is stored. Twenty
// rounds, to meet the windows between the fill's steps.
func TestZeroContentLengthHerdIsUnavailableToEveryClient(t *testing.T) {
	const clients = 32
	for round := range 20 {
		data := randBytes(t, 1000)
		host, gets := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "0")
		})
		dataDir := t.TempDir()
		n := startNode(t, testConfig(t, dataDir, host, host))
		url := n.url("/v2/library/x/blobs/" + digestOf(data))
		errs := make(chan error, clients)
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- wantUnavailable(url)
			}()
		}
		waitFor(t, wgDone(&wg), 30*time.Second, "every client's answer")
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
		if g := gets(); g < 1 || g > clients {
			t.Errorf("round %d: %d upstream GETs for %d clients, want 1 to %d", round, g, clients, clients)
		}
		assertNothingStored(t, dataDir)
		if t.Failed() {
			return
		}
	}
}

// wantUnavailable GETs url and reports any answer but a complete 503 with an
// UNAVAILABLE error body.
func wantUnavailable(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"code":"UNAVAILABLE"`)) {
		return fmt.Errorf("status %d, %d bytes %.120q, read err %v; want 503 UNAVAILABLE", resp.StatusCode, len(body), body, err)
	}
	return nil
}

// An upstream that takes the blob GET and never answers: the fill's idle
// timer runs from the request, not from the first byte, so after
// fill_idle_timeout (1 s here) cairn hangs up on the upstream and the
// client gets 503 UNAVAILABLE. A fill whose source never answered is not
// resumed (one upstream GET), leaves nothing on disk, and is not
// remembered: the next request asks the upstream again.
func TestUpstreamSilentOnOpenIsUnavailableAfterTheIdleTimeout(t *testing.T) {
	data := randBytes(t, 1000)
	hungUp := make(chan struct{}, 2)
	release := make(chan struct{})
	host, gets := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			select {
			case hungUp <- struct{}{}:
			case <-release:
			}
		case <-release: // the test ends: cairn never hung up
		}
	})
	t.Cleanup(func() { close(release) }) // before the upstream's Close, which waits for its handlers
	n, dataDir := startFaultyNode(t, &faulty{srv: &httptest.Server{URL: "http://" + host}}, time.Second)
	// The upstream never answers: only cairn's idle timer ends the request.
	client := &http.Client{Timeout: 30 * time.Second}
	for i := 1; i <= 2; i++ {
		resp, err := client.Get(n.url("/v2/library/x/blobs/" + digestOf(data)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := readAll(resp)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"code":"UNAVAILABLE"`)) {
			t.Errorf("request %d: status %d, body %.160q, read err %v; want 503 UNAVAILABLE", i, resp.StatusCode, body, err)
		}
		if g := gets(); g != i {
			t.Errorf("after request %d: %d upstream GETs, want %d", i, g, i)
		}
		select {
		case <-hungUp:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d: the upstream's request still open 10 s after cairn answered", i)
		}
	}
	assertNothingStored(t, dataDir)
}

// An upstream that sends a blob without Content-Length (chunked) and runs
// on past its bytes: cairn cannot know where the blob ends, so it hashes
// the whole body, the fill fails verification, and nothing is served or
// stored as that digest. Each request asks the upstream again: one GET
// each, no resume of a body that ended cleanly.
func TestUnsizedBodyPastTheBlobFailsVerification(t *testing.T) {
	data := randBytes(t, 1000)
	host, gets := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Write(data)
		w.(http.Flusher).Flush() // chunked, no Content-Length
		w.Write([]byte("trailing junk"))
	})
	n, dataDir := startFaultyNode(t, &faulty{srv: &httptest.Server{URL: "http://" + host}}, time.Second)
	for i := 1; i <= 2; i++ {
		resp, body := get(t, "GET", n.url("/v2/library/x/blobs/"+digestOf(data)))
		if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"code":"UNAVAILABLE"`)) || bytes.Contains(body, data[:64]) {
			t.Errorf("request %d: status %d, %d bytes %.80q; want 503 UNAVAILABLE, none of the blob", i, resp.StatusCode, len(body), body)
		}
		if g := gets(); g != i {
			t.Errorf("after request %d: %d upstream GETs, want %d", i, g, i)
		}
	}
	assertNothingStored(t, dataDir)
}
