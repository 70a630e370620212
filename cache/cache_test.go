package cache_test

import (
	"context"
	"errors"
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
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// clock is an injected clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// origin is go-containerregistry's registry behind a counting handler that
// can answer with a fixed status instead, or add rate-limit headers.
type origin struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   map[string]int // "HEAD /manifests/" style: method + kind
	// status, when non-zero, answers every non-ping request with it.
	status    int
	remaining string // ratelimit-remaining header value, if set
	hang      bool   // manifest requests never answer (until the client gives up)
	// deny answers 404 for one repository: go-containerregistry's registry
	// serves any blob under any name, a credentialed one would not.
	deny string
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{n: map[string]int{}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		status, remaining, hang, deny := o.status, o.remaining, o.hang, o.deny
		if r.URL.Path != "/v2/" {
			o.n[r.Method+" "+kind(r.URL.Path)]++
		}
		o.mu.Unlock()
		if remaining != "" {
			w.Header().Set("Ratelimit-Limit", "100;w=3600")
			w.Header().Set("Ratelimit-Remaining", remaining+";w=3600")
		}
		switch {
		case deny != "" && strings.HasPrefix(r.URL.Path, "/v2/"+deny+"/"):
			w.WriteHeader(http.StatusNotFound)
		case hang && strings.Contains(r.URL.Path, "/manifests/"):
			<-r.Context().Done()
		case status != 0 && r.URL.Path != "/v2/":
			w.WriteHeader(status)
		default:
			reg.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func kind(path string) string {
	for _, k := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if strings.Contains(path, k) {
			return k
		}
	}
	return path
}

func (o *origin) count(key string) int { o.mu.Lock(); defer o.mu.Unlock(); return o.n[key] }
func (o *origin) set(f func(*origin))  { o.mu.Lock(); defer o.mu.Unlock(); f(o) }

func (o *origin) push(t *testing.T, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(o.srv.URL, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	o.mu.Lock()
	clear(o.n)
	o.mu.Unlock()
	return d.String()
}

type env struct {
	o     *origin
	c     *cache.Cache
	store *storage.Store
	clock *clock
}

func newEnv(t *testing.T, tweak func(*cache.Namespace), opts ...cache.Option) *env {
	t.Helper()
	o := newOrigin(t)
	c, store, clk := cacheOver(t, o.srv.URL, tweak, opts...)
	return &env{o: o, c: c, store: store, clock: clk}
}

// cacheOver builds a cache on a fresh store with one namespace, docker.io,
// mirroring url, under an injected clock; tweak adjusts the namespace.
func cacheOver(t *testing.T, url string, tweak func(*cache.Namespace), opts ...cache.Option) (*cache.Cache, *storage.Store, *clock) {
	t.Helper()
	return cacheWith(t, func(now func() time.Time) cache.Origin {
		client, err := upstream.New("docker.io", url, upstream.WithClock(now), upstream.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		return client
	}, tweak, opts...)
}

// cacheWith builds a cache on a fresh store with one namespace, docker.io,
// reading from the origin newOrigin makes (given the injected clock);
// tweak, if not nil, adjusts the namespace.
func cacheWith(t *testing.T, newOrigin func(now func() time.Time) cache.Origin, tweak func(*cache.Namespace), opts ...cache.Option) (*cache.Cache, *storage.Store, *clock) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ns := cache.Namespace{Name: "docker.io", Origin: newOrigin(clk.Now), TagTTL: time.Minute, ServeStale: true,
		FillIdleTimeout: time.Minute, HeadTimeout: time.Second, RequestTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&ns)
	}
	opts = append([]cache.Option{cache.WithClock(clk.Now), cache.WithBreaker(3, 10*time.Second)}, opts...)
	c, err := cache.New(store, []cache.Namespace{ns}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, store, clk
}

func repo(name string) route.Repo { return route.Repo{Namespace: "docker.io", Name: name, Sent: name} }

func image(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (e *env) manifest(t *testing.T, r, ref string) (string, error) {
	t.Helper()
	m, err := e.c.Manifest(t.Context(), repo(r), ref, nil)
	return m.Digest, err
}

func TestTagTTLRevalidationAndMove(t *testing.T) {
	e := newEnv(t, nil)
	first := e.o.push(t, "library/a", "v1", image(t))
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != first {
		t.Fatalf("cold: %s, %v", d, err)
	}
	e.clock.Add(59 * time.Second)
	before := e.o.count("GET /manifests/") + e.o.count("HEAD /manifests/")
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != first {
		t.Fatalf("inside the TTL: %s, %v", d, err)
	}
	if after := e.o.count("GET /manifests/") + e.o.count("HEAD /manifests/"); after != before {
		t.Errorf("inside the TTL: %d upstream manifest requests, want none", after-before)
	}
	e.clock.Add(2 * time.Second)
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != first {
		t.Fatalf("after the TTL: %s, %v", d, err)
	}
	if h, g := e.o.count("HEAD /manifests/"), e.o.count("GET /manifests/"); h != 1 || g != 1 {
		t.Errorf("after the TTL: %d HEADs and %d GETs in all, want 1 HEAD and no new GET", h, g-1)
	}
	moved := e.o.push(t, "library/a", "v1", image(t))
	e.clock.Add(2 * time.Minute)
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != moved {
		t.Fatalf("moved tag: %s, %v; want %s", d, err, moved)
	}
	if h, g := e.o.count("HEAD /manifests/"), e.o.count("GET /manifests/"); h != 1 || g != 1 {
		t.Errorf("moved tag: %d HEAD and %d GET, want one of each (the GET by digest)", h, g)
	}
}

func TestRevalidationCoalesced(t *testing.T) {
	e := newEnv(t, nil)
	e.o.push(t, "library/a", "v1", image(t))
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Minute)
	heads := e.o.count("HEAD /manifests/")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.manifest(t, "library/a", "v1"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.o.count("HEAD /manifests/") - heads; n != 1 {
		t.Errorf("20 concurrent revalidations made %d HEADs, want 1", n)
	}
}

func TestServeStale(t *testing.T) {
	tests := []struct {
		status  int
		on404   bool
		stale   bool
		wantErr ocierr.Code
	}{
		{status: 503, stale: true},
		{status: 502, stale: true},
		{status: 429, stale: true},
		{status: 401, wantErr: ocierr.Unauthorized},
		{status: 403, wantErr: ocierr.Denied},
		{status: 404, wantErr: ocierr.ManifestUnknown},
		{status: 404, on404: true, stale: true},
	}
	for _, tt := range tests {
		e := newEnv(t, func(ns *cache.Namespace) { ns.ServeStaleOn404 = tt.on404 })
		want := e.o.push(t, "library/a", "v1", image(t))
		if _, err := e.manifest(t, "library/a", "v1"); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(2 * time.Minute)
		e.o.set(func(o *origin) { o.status = tt.status })
		d, err := e.manifest(t, "library/a", "v1")
		if tt.stale && (err != nil || d != want) {
			t.Errorf("upstream %d (on404 %v): %s, %v; want the stale digest", tt.status, tt.on404, d, err)
		}
		if !tt.stale && !errors.Is(err, tt.wantErr) {
			t.Errorf("upstream %d: %v, want %s and no stale answer", tt.status, err, tt.wantErr)
		}
	}
}

func TestUncachedWithUpstreamDownIs503(t *testing.T) {
	e := newEnv(t, nil)
	e.o.srv.Close()
	if _, err := e.manifest(t, "library/a", "v1"); ocierr.StatusOf(err) != 503 {
		t.Errorf("uncached tag, upstream gone: %v (status %d), want 503", err, ocierr.StatusOf(err))
	}
}

func TestCircuitBreaker(t *testing.T) {
	e := newEnv(t, nil)
	want := e.o.push(t, "library/a", "v1", image(t))
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	e.o.set(func(o *origin) { o.hang = true })
	e.clock.Add(2 * time.Minute)
	for i := range 3 { // three timeouts open the breaker (threshold 3)
		if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != want {
			t.Fatalf("failure %d: %s, %v; want the stale digest", i, d, err)
		}
	}
	heads := e.o.count("HEAD /manifests/")
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != want {
		t.Fatalf("breaker open: %s, %v", d, err)
	}
	if n := e.o.count("HEAD /manifests/") - heads; n != 0 {
		t.Errorf("breaker open: %d upstream HEADs, want none", n)
	}
	if _, err := e.manifest(t, "library/a", "never"); !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("uncached with the breaker open: %v, want UNAVAILABLE", err)
	}
	e.o.set(func(o *origin) { o.hang = false })
	e.clock.Add(11 * time.Second) // cooldown over: one probe closes it
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := e.o.count("HEAD /manifests/") - heads; n != 1 {
		t.Errorf("after the cooldown: %d HEADs, want the one probe", n)
	}
}

func TestRateLimitFloorSkipsRevalidation(t *testing.T) {
	e := newEnv(t, func(ns *cache.Namespace) { ns.RateLimitFloor = 5 })
	e.o.set(func(o *origin) { o.remaining = "2" })
	e.o.push(t, "library/a", "v1", image(t))
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Minute) // past the TTL, inside the 1 h window
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := e.o.count("HEAD /manifests/"); n != 0 {
		t.Errorf("budget under the floor: %d revalidating HEADs, want none", n)
	}
	e.clock.Add(time.Hour) // the window has passed
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := e.o.count("HEAD /manifests/"); n != 1 {
		t.Errorf("after the window: %d HEADs, want 1", n)
	}
}

func TestTenancyInCredentialedNamespace(t *testing.T) {
	e := newEnv(t, func(ns *cache.Namespace) { ns.Private = true })
	e.o.set(func(o *origin) { o.deny = "team/other" })
	img := image(t)
	e.o.push(t, "team/a", "v1", img)
	e.o.push(t, "team/b", "v1", img)
	layers, _ := img.Layers()
	dgst, _ := layers[0].Digest()
	read := func(r string) error {
		b, err := e.c.OpenBlob(t.Context(), repo(r), dgst.String())
		if err != nil {
			return err
		}
		defer b.Close()
		_, err = b.WriteRange(context.Background(), io.Discard, 0, b.Size())
		return err
	}
	if err := read("team/a"); err != nil {
		t.Fatalf("repo a: %v", err)
	}
	heads := e.o.count("HEAD /blobs/")
	if err := read("team/b"); err != nil {
		t.Fatalf("repo b: %v", err)
	}
	if n := e.o.count("HEAD /blobs/") - heads; n != 1 {
		t.Errorf("repo b: %d confirming HEADs, want 1", n)
	}
	if err := read("team/b"); err != nil || e.o.count("HEAD /blobs/")-heads != 1 {
		t.Errorf("repo b again: %v; it is linked now, want no new HEAD", err)
	}
	if err := read("team/other"); !errors.Is(err, ocierr.BlobUnknown) {
		t.Errorf("a repo the upstream does not serve it for: %v, want BLOB_UNKNOWN", err)
	}
	e.o.set(func(o *origin) { o.status = 503 })
	if err := read("team/c"); ocierr.StatusOf(err) != 503 {
		t.Errorf("unlinked, upstream down: %v, want 503", err)
	}
	if err := read("team/a"); err != nil {
		t.Errorf("linked repo with the upstream down: %v, want served", err)
	}
}
