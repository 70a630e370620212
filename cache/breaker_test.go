package cache_test

// The circuit breaker's probes and what counts as an outage: a probe that
// ends without a verdict (the client left, the fill went idle) must not
// leave the breaker open for ever, and a stalled fill is an outage.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// hangOrigin: a registry whose every non-ping request can be made to hang
// until the client gives up.
type hangOrigin struct {
	srv  *httptest.Server
	hang atomic.Bool
	reqs atomic.Int64 // every request but the ping

	mu     sync.Mutex
	onHang func() // called as each hanging request arrives
}

func newHangOrigin(t *testing.T) *hangOrigin {
	o := &hangOrigin{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			reg.ServeHTTP(w, r)
			return
		}
		o.reqs.Add(1)
		if o.hang.Load() {
			o.mu.Lock()
			f := o.onHang
			o.mu.Unlock()
			if f != nil {
				f()
			}
			<-r.Context().Done()
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *hangOrigin) setOnHang(f func()) { o.mu.Lock(); defer o.mu.Unlock(); o.onHang = f }

func newHangEnv(t *testing.T) (*hangOrigin, *cache.Cache, *clock) {
	o := newHangOrigin(t)
	c, _, clk := cacheOver(t, o.srv.URL, func(ns *cache.Namespace) {
		ns.FillIdleTimeout, ns.HeadTimeout, ns.RequestTimeout = 200*time.Millisecond, 100*time.Millisecond, time.Second
	})
	return o, c, clk
}

// pushLayered pushes a one-layer image to the origin and returns its layer.
func pushLayered(t *testing.T, o *hangOrigin) (v1.Layer, string) {
	t.Helper()
	img := image(t)
	ref, _ := name.ParseReference(strings.TrimPrefix(o.srv.URL, "http://")+"/library/a:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	return layers[0], d.String()
}

func openBreaker(t *testing.T, o *hangOrigin, c *cache.Cache, dgst string) {
	t.Helper()
	o.hang.Store(true)
	for range 3 { // three HEAD timeouts: threshold 3
		if _, err := c.StatBlob(context.Background(), repo("library/a"), dgst); err == nil {
			t.Fatal("HEAD against a hanging upstream succeeded")
		}
	}
	before := o.reqs.Load()
	if _, err := c.StatBlob(context.Background(), repo("library/a"), dgst); !errors.Is(err, ocierr.Unavailable) || o.reqs.Load() != before {
		t.Fatalf("after three timeouts: %v, %d upstream requests; want UNAVAILABLE without asking (the breaker open)", err, o.reqs.Load()-before)
	}
}

// A client that leaves during the half-open probe ends the probe: once the
// upstream is back, the next request reaches it and the breaker closes.
// (It used to leave the breaker probing for ever.)
func TestBreakerClosesAfterItsProbeClientLeft(t *testing.T) {
	o, c, clk := newHangEnv(t)
	const dgst = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	openBreaker(t, o, c, dgst)
	clk.Add(11 * time.Second) // cooldown over: the next request is the probe
	ctx, cancel := context.WithCancel(context.Background())
	o.setOnHang(cancel) // the client leaves once the probe reaches the upstream
	_, err := c.StatBlob(ctx, repo("library/a"), dgst)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("probe: %v, want the client's cancellation", err)
	}
	o.hang.Store(false)
	clk.Add(time.Hour)
	before := o.reqs.Load()
	_, err = c.StatBlob(context.Background(), repo("library/a"), dgst)
	if !errors.Is(err, ocierr.BlobUnknown) || o.reqs.Load() == before {
		t.Fatalf("an hour later, upstream healthy: %v after %d upstream requests; want the upstream's BLOB_UNKNOWN (the breaker stayed open)", err, o.reqs.Load()-before)
	}
}

// A probe that is a fill cut by the fill's idle timeout ends the probe
// too: once the upstream is back, the blob is fetched and served whole.
// (The idle timer's cancellation used to look like a client leaving, so
// the breaker stayed open.)
func TestBreakerClosesAfterItsProbeFillWentIdle(t *testing.T) {
	o, c, clk := newHangEnv(t)
	layer, d := pushLayered(t, o)
	openBreaker(t, o, c, "sha256:0000000000000000000000000000000000000000000000000000000000000001")
	clk.Add(11 * time.Second)
	if _, err := c.OpenBlob(context.Background(), repo("library/a"), d); err == nil {
		t.Fatal("fill against a hanging upstream succeeded")
	}
	o.hang.Store(false)
	clk.Add(time.Hour)
	b, err := c.OpenBlob(context.Background(), repo("library/a"), d)
	if err != nil {
		t.Fatalf("an hour later, upstream healthy: %v (the breaker stayed open)", err)
	}
	defer b.Close()
	var got bytes.Buffer
	if _, err := b.WriteRange(context.Background(), &got, 0, b.Size()); err != nil {
		t.Fatal(err)
	}
	want := layerBytes(t, layer)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("served %d bytes, want the layer's %d", got.Len(), len(want))
	}
}

// A fill cut by its idle timeout is an outage: after stalled fills reach
// the threshold, the breaker is open and the next fill fails without
// asking the upstream.
func TestFillIdleTimeoutsOpenBreaker(t *testing.T) {
	o, c, _ := newHangEnv(t)
	_, d := pushLayered(t, o)
	o.hang.Store(true)
	for i := range 3 { // threshold 3
		if _, err := c.OpenBlob(context.Background(), repo("library/a"), d); !errors.Is(err, ocierr.Unavailable) {
			t.Fatalf("stalled fill %d: %v, want UNAVAILABLE", i, err)
		}
	}
	before := o.reqs.Load()
	if _, err := c.OpenBlob(context.Background(), repo("library/a"), d); !errors.Is(err, ocierr.Unavailable) {
		t.Fatalf("a fill after 3 stalled ones: %v, want UNAVAILABLE", err)
	}
	if n := o.reqs.Load() - before; n != 0 {
		t.Errorf("after 3 stalled fills the next one asked the upstream (%d requests): idle timeouts were not counted by the breaker", n)
	}
}

func layerBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
