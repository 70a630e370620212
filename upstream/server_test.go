package upstream

import (
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
)

// fault handles a request instead of the registry when it returns true. It
// may also set response headers and return false to pass the request on.
type fault func(w http.ResponseWriter, r *http.Request) bool

// testUpstream is a real registry (ggcr pkg/registry) behind a counting,
// fault-injecting handler.
type testUpstream struct {
	srv    *httptest.Server
	reg    http.Handler
	mu     sync.Mutex
	counts map[string]int // by kind: ping, token, manifest, blob, tags
	faults []fault
}

func newTestUpstream(t *testing.T) *testUpstream {
	t.Helper()
	u := &testUpstream{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func newTLSTestUpstream(t *testing.T) *testUpstream {
	t.Helper()
	u := &testUpstream{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // idle conns closed at Close
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *testUpstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.counts[kind(r.URL.Path)]++
	faults := u.faults
	u.mu.Unlock()
	for _, f := range faults {
		if f(w, r) {
			return
		}
	}
	u.reg.ServeHTTP(w, r)
}

func kind(path string) string {
	switch {
	case path == "/v2/":
		return "ping"
	case path == "/token":
		return "token"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	}
	return "other"
}

// use sets the faults (after seeding) and resets the counts.
func (u *testUpstream) use(fs ...fault) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.faults = fs
	u.counts = map[string]int{}
}

func (u *testUpstream) count(kind string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[kind]
}

func (u *testUpstream) host() string { return u.srv.Listener.Addr().String() }

// client returns a client for u with fast retries.
func (u *testUpstream) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	c, err := New("registry.example", u.srv.URL, append([]Option{withBackoff(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func (u *testUpstream) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(u.host()+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pushImage pushes a random image to repo:tag.
func (u *testUpstream) pushImage(t *testing.T, repoTag string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(u.ref(t, repoTag), img, remote.WithTransport(u.srv.Client().Transport)); err != nil {
		t.Fatalf("remote.Write: %v", err)
	}
	return img
}

// pushIndex pushes a random index (and its children) to repo:tag.
func (u *testUpstream) pushIndex(t *testing.T, repoTag string) v1.ImageIndex {
	t.Helper()
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(u.ref(t, repoTag), idx, remote.WithTransport(u.srv.Client().Transport)); err != nil {
		t.Fatalf("remote.WriteIndex: %v", err)
	}
	return idx
}

// status answers matching requests with a status, headers and body.
func status(match func(*http.Request) bool, code int, hdr map[string]string, body string) fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !match(r) {
			return false
		}
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
		return true
	}
}

func isKind(k string) func(*http.Request) bool {
	return func(r *http.Request) bool { return kind(r.URL.Path) == k }
}
