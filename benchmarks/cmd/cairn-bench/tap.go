package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tap is a reverse proxy between both servers and the upstream. It counts
// the requests each server sends upstream and records, for each blob GET,
// when its first byte came back and when it passed each MiB: the clock
// the thundering-herd figures are measured against.
type tap struct {
	srv  *http.Server
	addr string

	mu   sync.Mutex
	gets []*upstreamGET
	reqs map[string]int // "GET manifest", "HEAD blob", ...
}

// upstreamGET is one blob GET the upstream answered.
type upstreamGET struct {
	digest string
	start  int64     // the body's first offset (a ranged GET starts later)
	asked  time.Time // when the tap sent it upstream: before any of its bytes came

	mu    sync.Mutex
	first time.Time   // first body byte, as the tap read it
	marks []time.Time // marks[i]: the body passed start + (i+1) MiB
	read  int64
}

var tapBlobPath = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)

func startTap(upstream string) (*tap, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	t := &tap{reqs: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.addr = l.Addr().String()
	transport := &http.Transport{
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
		WriteBufferSize:     256 * kib,
		ReadBufferSize:      256 * kib,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport: &tapTransport{t: t, next: transport},
		BufferPool: &bufferPool{p: sync.Pool{New: func() any {
			b := make([]byte, 256*kib)
			return &b
		}}},
	}
	t.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(l) }()
	return t, nil
}

func (t *tap) url() string { return "http://" + t.addr }

func (t *tap) close() { _ = t.srv.Close() }

// count is how many requests of kind ("GET blob", "HEAD manifest") the
// upstream has answered so far.
func (t *tap) count(kind string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reqs[kind]
}

// blobGETs lists the blob GETs for digest so far.
func (t *tap) blobGETs(digest string) []*upstreamGET {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*upstreamGET
	for _, g := range t.gets {
		if g.digest == digest {
			out = append(out, g)
		}
	}
	return out
}

// forget drops the records of digest, once its scenario is over.
func (t *tap) forget(digest string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.gets[:0]
	for _, g := range t.gets {
		if g.digest != digest {
			kept = append(kept, g)
		}
	}
	clear(t.gets[len(kept):])
	t.gets = kept
}

type tapTransport struct {
	t    *tap
	next http.RoundTripper
}

func (tt *tapTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := "manifest"
	m := tapBlobPath.FindStringSubmatch(r.URL.Path)
	switch {
	case m != nil:
		kind = "blob"
	case strings.Contains(r.URL.Path, "/blobs/uploads"):
		kind = "upload"
	case !strings.Contains(r.URL.Path, "/manifests/"):
		kind = "other"
	}
	tt.t.mu.Lock()
	tt.t.reqs[r.Method+" "+kind]++
	tt.t.mu.Unlock()
	asked := time.Now()
	resp, err := tt.next.RoundTrip(r)
	if err != nil || m == nil || r.Method != http.MethodGet || resp.StatusCode/100 != 2 {
		return resp, err
	}
	g := &upstreamGET{digest: m[1], start: rangeStart(resp.Header.Get("Content-Range")), asked: asked}
	tt.t.mu.Lock()
	tt.t.gets = append(tt.t.gets, g)
	tt.t.mu.Unlock()
	resp.Body = &tapBody{ReadCloser: resp.Body, g: g}
	return resp, nil
}

// rangeStart is N of "bytes N-M/T", else 0.
func rangeStart(cr string) int64 {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(rest[:max(strings.IndexByte(rest, '-'), 0)], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

type tapBody struct {
	io.ReadCloser
	g *upstreamGET
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		now := time.Now()
		g := b.g
		g.mu.Lock()
		if g.first.IsZero() {
			g.first = now
		}
		g.read += int64(n)
		for int64(len(g.marks)+1)*mib <= g.read {
			g.marks = append(g.marks, now)
		}
		g.mu.Unlock()
	}
	return n, err
}

// passed is when the body reached blob offset off, to MiB resolution
// rounded down (so never later than the truth: a lag measured from it is
// never flattered), or zero if it never did.
func (g *upstreamGET) passed(off int64) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if off < g.start {
		return time.Time{}
	}
	rel := off - g.start
	if rel < mib {
		return g.first
	}
	i := rel/mib - 1
	if i >= int64(len(g.marks)) {
		return time.Time{}
	}
	return g.marks[i]
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }
