package main

import (
	"bytes"
	"crypto/rand"
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

// An upstream that says Content-Length: 0 for a non-empty blob: the fill
// fails verification, yet the client receives a complete 200 with 0 bytes.
func TestZeroLengthLie(t *testing.T) {
	data := randBytes(t, 1000)
	host, _ := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
	})
	cfg := testConfig(t, t.TempDir(), host, host)
	n := startNode(t, cfg)
	resp, err := http.Get(n.url("/v2/library/x/blobs/" + digestOf(data)))
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("status %d, Content-Length %q, %d bytes, read err %v", resp.StatusCode, resp.Header.Get("Content-Length"), len(body), rerr)
	if resp.StatusCode == 200 && rerr == nil {
		t.Errorf("a fill that failed verification was answered with a clean, complete 200")
	}
}

// A source that ignores Range on resume: skipping the already-written head
// runs under the idle timer although bytes keep arriving.
func TestSkipUnderIdleTimer(t *testing.T) {
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
		// steady: 128 KiB every 100 ms (far inside the 1 s idle timeout)
		trickle(w, data, 128<<10, 100*time.Millisecond)
	})
	n, _ := startFaultyNode(t, &faulty{srv: &httptest.Server{URL: "http://" + host}}, time.Second)
	body, err := readBlob(n.url("/v2/library/x/blobs/" + digestOf(data)))
	t.Logf("%d bytes, err %v, upstream GETs %d", len(body), err, gets())
	if err != nil {
		t.Errorf("fill failed although the source never went idle for 1s")
	}
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

func TestZeroLengthLieHerd(t *testing.T) {
	clean := 0
	for round := 0; round < 20 && clean == 0; round++ {
		data := randBytes(t, 1000)
		host, _ := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "0")
		})
		n := startNode(t, testConfig(t, t.TempDir(), host, host))
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(n.url("/v2/library/x/blobs/" + digestOf(data)))
				if err != nil {
					return
				}
				_, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && rerr == nil {
					mu.Lock()
					clean++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		t.Logf("round %d: clean 200s so far %d", round, clean)
	}
	if clean > 0 {
		t.Errorf("%d clients got a clean 200 with 0 bytes for a blob that failed verification", clean)
	}
}

// The upstream does not answer within the idle timeout: what does the client get?
func TestIdleOnOpenStatus(t *testing.T) {
	data := randBytes(t, 1000)
	host, gets := blobServer(t, data, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	n, _ := startFaultyNode(t, &faulty{srv: &httptest.Server{URL: "http://" + host}}, time.Second)
	resp, body := get(t, "GET", n.url("/v2/library/x/blobs/"+digestOf(data)))
	t.Logf("status %d body %s gets %d", resp.StatusCode, body, gets())
	if resp.StatusCode == 500 {
		t.Errorf("idle timeout surfaced as 500")
	}
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
	if files := blobFiles(t, dataDir); len(files) != 0 {
		t.Errorf("blobs/ holds %v after fills that failed verification", files)
	}
	if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ holds %v after fills that failed verification", left)
	}
}
