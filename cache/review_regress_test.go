package cache_test

// Regression tests from a review: breaker probes, idle timeouts, tenancy
// across namespaces, rule pins of moved tags, narrow-Accept tag records.

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// hangOrigin: a registry whose every non-ping request can be made to hang
// until the client gives up.
type hangOrigin struct {
	srv  *httptest.Server
	hang atomic.Bool
	gets atomic.Int64 // manifest GETs
	reqs atomic.Int64 // every request but the ping
}

func newHangOrigin(t *testing.T) *hangOrigin {
	o := &hangOrigin{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			o.reqs.Add(1)
		}
		if r.URL.Path != "/v2/" && o.hang.Load() {
			<-r.Context().Done()
			return
		}
		if r.Method == "GET" && strings.Contains(r.URL.Path, "/manifests/") {
			o.gets.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func newHangEnv(t *testing.T) (*hangOrigin, *cache.Cache, *clock) {
	o := newHangOrigin(t)
	c, _, clk := cacheOver(t, o.srv.URL, func(ns *cache.Namespace) {
		ns.FillIdleTimeout, ns.HeadTimeout, ns.RequestTimeout = 200*time.Millisecond, 100*time.Millisecond, time.Second
	})
	return o, c, clk
}

func openBreaker(t *testing.T, o *hangOrigin, c *cache.Cache, dgst string) {
	t.Helper()
	o.hang.Store(true)
	for range 3 { // three HEAD timeouts: threshold 3
		if _, err := c.StatBlob(context.Background(), repo("library/a"), dgst); err == nil {
			t.Fatal("HEAD against a hanging upstream succeeded")
		}
	}
}

// A client that leaves during the half-open probe leaves probing=true for
// ever: the breaker never closes again, though the upstream is back.
func TestBreakerProbeCancelledByClientNeverCloses(t *testing.T) {
	o, c, clk := newHangEnv(t)
	const dgst = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	openBreaker(t, o, c, dgst)
	clk.Add(11 * time.Second) // cooldown over: the next request is the probe
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	_, err := c.StatBlob(ctx, repo("library/a"), dgst)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("probe: %v, want the client's cancellation", err)
	}
	o.hang.Store(false)
	clk.Add(time.Hour)
	_, err = c.StatBlob(context.Background(), repo("library/a"), dgst)
	if err != nil && strings.Contains(err.Error(), "circuit open") {
		t.Fatalf("an hour later, upstream healthy: %v (the breaker never closes)", err)
	}
}

// The fill's idle timer cancels its context: that outage is a
// context.Canceled to the breaker, so it is not counted, and when it hits
// the probe the breaker is stuck open.
func TestBreakerProbeStuckByFillIdleTimeout(t *testing.T) {
	o, c, clk := newHangEnv(t)
	img := image(t)
	ref, _ := name.ParseReference(strings.TrimPrefix(o.srv.URL, "http://")+"/library/a:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	openBreaker(t, o, c, "sha256:0000000000000000000000000000000000000000000000000000000000000001")
	clk.Add(11 * time.Second)
	if _, err := c.OpenBlob(context.Background(), repo("library/a"), d.String()); err == nil {
		t.Fatal("fill against a hanging upstream succeeded")
	}
	o.hang.Store(false)
	clk.Add(time.Hour)
	b, err := c.OpenBlob(context.Background(), repo("library/a"), d.String())
	if err != nil {
		t.Fatalf("an hour later, upstream healthy: %v (the breaker never closes)", err)
	}
	b.Close()
}

// The fill's idle timeout is an outage the breaker never counts.
func TestFillIdleTimeoutsDoNotOpenBreaker(t *testing.T) {
	o, c, _ := newHangEnv(t)
	img := image(t)
	ref, _ := name.ParseReference(strings.TrimPrefix(o.srv.URL, "http://")+"/library/a:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	o.hang.Store(true)
	for range 4 {
		c.OpenBlob(context.Background(), repo("library/a"), d.String())
	}
	before := o.reqs.Load()
	if _, err := c.OpenBlob(context.Background(), repo("library/a"), d.String()); err == nil {
		t.Fatal("a fill against a stalled upstream succeeded")
	}
	if n := o.reqs.Load() - before; n != 0 {
		t.Errorf("after 4 stalled fills the 5th still asked the upstream (%d requests): idle timeouts are not counted by the breaker", n)
	}
}

// Two namespaces over one store: a credentialed one (Private) and an
// anonymous one. A blob and a manifest fetched for a private repository are
// served to any repository of the anonymous namespace (and of a hosted one)
// that names the digest, without the upstream ever being asked.
func TestPrivateContentLeaksThroughOtherNamespaces(t *testing.T) {
	o := newOrigin(t)
	img := image(t)
	o.push(t, "team/secret", "v1", img)
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	priv, _ := upstream.New("ghcr.io", o.srv.URL, upstream.WithRetries(0))
	dead := httptest.NewServer(http.NotFoundHandler()) // the anonymous mirror's upstream has none of it
	t.Cleanup(dead.Close)
	anon, _ := upstream.New("docker.io", dead.URL, upstream.WithRetries(0))
	base := cache.Namespace{TagTTL: time.Minute, FillIdleTimeout: time.Minute, HeadTimeout: time.Second, RequestTimeout: time.Second}
	p, a, h := base, base, base
	p.Name, p.Upstream, p.Private = "ghcr.io", priv, true
	a.Name, a.Upstream = "docker.io", anon
	h.Name = "hosted.local"
	c, err := cache.New(store, []cache.Namespace{p, a, h})
	if err != nil {
		t.Fatal(err)
	}
	secret := route.Repo{Namespace: "ghcr.io", Name: "team/secret", Sent: "team/secret"}
	m, err := c.Manifest(t.Context(), secret, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	b, err := c.OpenBlob(t.Context(), secret, ld.String())
	if err != nil {
		t.Fatal(err)
	}
	b.WriteRange(t.Context(), io.Discard, 0, b.Size())
	b.Close()

	for _, r := range []route.Repo{
		{Namespace: "docker.io", Name: "library/anyone", Sent: "anyone"},
		{Namespace: "hosted.local", Name: "anyone", Sent: "anyone"},
	} {
		if b, err := c.OpenBlob(t.Context(), r, ld.String()); err == nil {
			b.Close()
			t.Errorf("%s/%s was served the private layer %s", r.Namespace, r.Name, ld)
		}
		if _, err := c.StatBlob(t.Context(), r, ld.String()); err == nil {
			t.Errorf("%s/%s was told the size of the private layer", r.Namespace, r.Name)
		}
		if _, err := c.Manifest(t.Context(), r, m.Digest, nil); err == nil {
			t.Errorf("%s/%s was served the private manifest %s", r.Namespace, r.Name, m.Digest)
		}
	}
}

// A rule-pinned tag that moves upstream leaves its old image pinned for
// ever ("config:<rule>" is never dropped): every revision a pinned tag (or
// every tag under a glob) ever had stays on disk, and the budget cannot hold.
func TestPinsOfMovedTagsAreNeverReleased(t *testing.T) {
	e := newEnv(t, nil, cache.WithLimit(cache.Limit{Max: 1, High: 0.5, Low: 0.25}),
		cache.WithPins(rules(t, "docker.io/library/a:v1")))
	old := e.o.push(t, "library/a", "v1", image(t))
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	moved := e.o.push(t, "library/a", "v1", image(t))
	e.clock.Add(2 * time.Minute)
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != moved {
		t.Fatalf("moved: %s %v", d, err)
	}
	if err := e.c.EnforceLimit(); err != nil {
		t.Fatal(err)
	}
	if pinned, _ := e.store.Pinned(old); pinned {
		t.Errorf("the tag's previous digest %s is still pinned by the rule after the tag moved", old)
	}
}

// A tag pointing at an image manifest (no index), asked for by a client
// whose Accept lacks an index type: the tag record is never written, so
// every request is a GET by tag (counted by Docker Hub), and nothing can be
// served stale.
func TestImageTagWithNarrowAcceptIsNeverRecorded(t *testing.T) {
	e := newEnv(t, nil)
	e.o.push(t, "library/a", "v1", image(t))
	accept := []string{oci.MediaTypeDockerManifest, oci.MediaTypeOCIManifest}
	for range 3 {
		if _, err := e.c.Manifest(t.Context(), repo("library/a"), "v1", accept); err != nil {
			t.Fatal(err)
		}
	}
	if g := e.o.count("GET /manifests/"); g != 1 {
		t.Errorf("3 pulls of a fresh tag inside its TTL: %d upstream GETs, want 1", g)
	}
	if _, err := e.store.Tag("docker.io", "library/a", "v1"); err != nil {
		t.Errorf("tag record: %v", err)
	}
}
