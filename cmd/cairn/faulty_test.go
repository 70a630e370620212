package main

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// faulty is an upstream registry that serves one blob from memory, with
// Range, and misbehaves on demand. It counts blob GETs and records each
// request's Range header.
type faulty struct {
	srv    *httptest.Server
	data   []byte
	digest string

	mu     sync.Mutex
	gets   int
	ranges []string
	// gate, when set, holds every body after gateAt bytes until closed.
	gate   chan struct{}
	gateAt int
	// dropAfter cuts the connection after that many body bytes, for the
	// first drops requests (a reset mid-body).
	dropAfter, drops int
	// stallAfter stops sending after that many bytes (without closing) for
	// the first stalls requests.
	stallAfter, stalls int
	flip               bool // flip one byte in the middle of every body
	noRange            bool // ignore Range: always 200 from byte 0
}

func newFaulty(t *testing.T, size int) *faulty {
	t.Helper()
	f := &faulty{data: make([]byte, size)}
	if _, err := rand.Read(f.data); err != nil {
		t.Fatal(err)
	}
	f.digest = digestOf(f.data)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faulty) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *faulty) count() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets, append([]string(nil), f.ranges...)
}

func (f *faulty) set(change func(*faulty)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *faulty) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/blobs/"+f.digest) {
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}`, http.StatusNotFound)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
		return
	}
	plan := f.plan(r)
	body := f.data[plan.from:]
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if plan.from > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", plan.from, len(f.data)-1, len(f.data)))
		w.WriteHeader(http.StatusPartialContent)
	}
	f.send(w, r, body, plan)
}

type plan struct {
	from              int
	gate              chan struct{}
	gateAt            int
	drop, stall, flip int // byte counts; -1 for none
}

// plan decides, under the lock, how this request misbehaves.
func (f *faulty) plan(r *http.Request) plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	f.ranges = append(f.ranges, r.Header.Get("Range"))
	p := plan{gate: f.gate, gateAt: f.gateAt, drop: -1, stall: -1, flip: -1}
	if rng := r.Header.Get("Range"); rng != "" && !f.noRange {
		fmt.Sscanf(rng, "bytes=%d-", &p.from)
	}
	if f.drops > 0 {
		f.drops--
		p.drop = f.dropAfter
	}
	if f.stalls > 0 {
		f.stalls--
		p.stall = f.stallAfter
	}
	if f.flip {
		p.flip = len(f.data)/2 - p.from
	}
	return p
}

func (f *faulty) send(w http.ResponseWriter, r *http.Request, body []byte, p plan) {
	if p.flip >= 0 && p.flip < len(body) {
		body = append([]byte(nil), body...)
		body[p.flip] ^= 0xff
	}
	cut := len(body)
	for _, at := range []int{p.gateAt, p.drop, p.stall} {
		if at >= 0 && at < cut && (at != p.gateAt || p.gate != nil) {
			cut = at
		}
	}
	w.Write(body[:cut])
	w.(http.Flusher).Flush()
	switch {
	case cut == len(body):
		return
	case cut == p.drop:
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
		return
	case cut == p.stall:
		<-r.Context().Done()
		return
	}
	select { // the gate
	case <-p.gate:
	case <-time.After(30 * time.Second):
	}
	w.Write(body[cut:])
}
