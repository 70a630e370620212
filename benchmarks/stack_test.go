package benchmarks

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/registry"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// origin is an upstream that serves blobs from memory, with Range.
type origin struct {
	mu    sync.Mutex
	blobs map[string][]byte
	gets  int
}

func (o *origin) add(b []byte) string {
	s := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(s[:])
	o.mu.Lock()
	o.blobs[d] = b
	o.mu.Unlock()
	return d
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if i < 0 {
		return // /v2/: 200
	}
	o.mu.Lock()
	b, ok := o.blobs[r.URL.Path[i+len("/blobs/"):]]
	o.gets++
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// stack is one cairn node's API over a fresh data dir, in process.
type stack struct {
	origin  *origin
	handler http.Handler
	srv     *httptest.Server
}

func newStack(b *testing.B) *stack {
	b.Helper()
	o := &origin{blobs: map[string][]byte{}}
	up := httptest.NewServer(o)
	b.Cleanup(up.Close)
	s := newStackOver(b, up.URL)
	s.origin = o
	return s
}

// newStackOver is a node whose docker.io namespace mirrors upstreamURL.
func newStackOver(b *testing.B, upstreamURL string) *stack {
	b.Helper()
	store, err := storage.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return newStackOn(b, store, upstreamURL)
}

// newStackOn is newStackOver on an open store.
func newStackOn(b *testing.B, store *storage.Store, upstreamURL string) *stack {
	b.Helper()
	client, err := upstream.New("docker.io", upstreamURL)
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(store, []cache.Namespace{{Name: "docker.io", Origin: client, TagTTL: time.Minute, FillIdleTimeout: time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	router, err := route.NewRouter([]route.Namespace{{Name: "docker.io", LibraryPrefix: true, Default: true}})
	if err != nil {
		b.Fatal(err)
	}
	h, err := registry.New(router, c)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return &stack{handler: h, srv: srv}
}

func randomBlob(b *testing.B, size int) []byte {
	b.Helper()
	buf := make([]byte, size)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return buf
}
