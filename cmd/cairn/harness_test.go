package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/internal/config"
)

// counting is a real registry (go-containerregistry's) behind a handler
// that counts requests by method and path, and can be stopped.
type counting struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs map[string]int // "GET /v2/library/x/blobs/sha256:..." -> count
	// lie, when set, replaces blob bodies with other bytes of the same length.
	lie bool
	// throttle, when set, answers manifest requests 429 with Retry-After: 7.
	throttle bool
	// down, when set, drops every connection without an answer.
	down bool
	// remaining, when set, is sent as Docker Hub's ratelimit-remaining.
	remaining string
}

func newUpstream(t *testing.T) *counting {
	t.Helper()
	u := &counting{reqs: map[string]int{}}
	reg := registry.New(registry.Logger(nopLogger()))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs[r.Method+" "+r.URL.Path]++
		lie, throttle, down, remaining := u.lie, u.throttle, u.down, u.remaining
		u.mu.Unlock()
		if remaining != "" {
			w.Header().Set("Ratelimit-Limit", "100;w=21600")
			w.Header().Set("Ratelimit-Remaining", remaining+";w=21600")
		}
		switch {
		case down:
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		case throttle && strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case lie && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/"):
			reg.ServeHTTP(&corrupting{ResponseWriter: w}, r)
		case strings.HasSuffix(r.URL.Path, "/tags/list") && r.URL.Query().Get("n") != "":
			serveTagsWithLink(reg, w, r)
		default:
			reg.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// serveTagsWithLink adds the Link header real registries send on a full
// page (go-containerregistry's test registry pages but sends no Link).
func serveTagsWithLink(reg http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, r)
	var tl struct {
		Tags []string `json:"tags"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &tl)
	if n := r.URL.Query().Get("n"); fmt.Sprint(len(tl.Tags)) == n && len(tl.Tags) > 0 {
		w.Header().Set("Link", fmt.Sprintf(`<%s?n=%s&last=%s>; rel="next"`, r.URL.Path, n, tl.Tags[len(tl.Tags)-1]))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (u *counting) setDown(down bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.down = down
}

// reset forgets the requests counted so far (the seeding client's).
func (u *counting) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	clear(u.reqs)
}

// count returns how many requests matched method and a path suffix.
func (u *counting) count(method, suffix string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for k, v := range u.reqs {
		if strings.HasPrefix(k, method+" ") && strings.HasSuffix(k, suffix) {
			n += v
		}
	}
	return n
}

func (u *counting) host() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// corrupting flips the bits of every body byte: same length, wrong digest.
type corrupting struct{ http.ResponseWriter }

func (c *corrupting) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i := range p {
		q[i] = ^p[i]
	}
	return c.ResponseWriter.Write(q)
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// push writes an image or index to the upstream at repo:tag.
func (u *counting) push(t *testing.T, repo, tag string, img any) {
	t.Helper()
	ref, err := name.ParseReference(u.host()+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(ref, v)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v)
	}
	if err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

func randomImage(t *testing.T, size int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// node is a cairn node started the way `cairn serve` starts one.
type node struct {
	s      *server
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned, with its error in err
	err    error
	logs   *syncBuffer
}

func (n *node) url(path string) string { return "http://" + n.s.apiLn.Addr().String() + path }

func (n *node) addr() string { return n.s.apiLn.Addr().String() }

// stop shuts the node down and waits for it.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	select {
	case <-n.done:
		if n.err != nil {
			t.Errorf("cairn stopped with %v", n.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cairn did not stop")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig writes a config file for the upstreams, with any extra
// top-level sections, and loads it through the same path `cairn serve -c`
// uses.
func testConfig(t testing.TB, dataDir, docker, ghcr string, extra ...string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`version: 1
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
data_dir: %q
log: {level: debug, format: json}
`+strings.Join(extra, "\n")+`
upstreams:
  - name: docker.io
    url: http://%s
    aliases: [index.docker.io]
    default: true
  - name: ghcr.io
    url: http://%s
  - name: registry.internal
`, dataDir, docker, ghcr)
	path := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startNode(t *testing.T, cfg *config.Config) *node {
	t.Helper()
	return startTuned(t, cfg, func(*server) {})
}

// get sends one request to the node and returns the response with its body read.
func get(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// rawGet sends a request line exactly as given (no client-side cleaning).
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, _ := readAll(resp)
	return resp.StatusCode, string(body)
}
