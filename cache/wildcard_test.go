package cache_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// hostOrigins is the upstream of each host of a wildcard: one memOrigin
// per host, with a count of how often each was built.
type hostOrigins struct {
	mu      sync.Mutex
	origins map[string]*memOrigin
	builds  map[string]int
}

func (h *hostOrigins) forHost(host string) (cache.Origin, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.builds[host]++
	o, ok := h.origins[host]
	if !ok {
		return nil, fmt.Errorf("no upstream for %s", host)
	}
	return o, nil
}

func (h *hostOrigins) built(host string) int { h.mu.Lock(); defer h.mu.Unlock(); return h.builds[host] }

const shape = "*.registry.example"

// wildcardFixture is a cache whose one namespace is the wildcard shape.
type wildcardFixture struct {
	c       *cache.Cache
	h       *hostOrigins
	digests map[string]string // host -> the digest its team/app:v1 names
	reg     *prometheus.Registry
	clk     *clock
}

func wildcardCache(t *testing.T, maxHosts int, hosts ...string) wildcardFixture {
	t.Helper()
	h := &hostOrigins{origins: map[string]*memOrigin{}, builds: map[string]int{}}
	digests := map[string]string{}
	for _, host := range hosts {
		o := newMemOrigin()
		body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"annotations":{"host":%q}}`, oci.MediaTypeOCIManifest, host)
		digests[host] = o.putManifest("team/app", "v1", oci.MediaTypeOCIManifest, []byte(body))
		h.origins[host] = o
	}
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ns := cache.Namespace{Name: shape, ForHost: h.forHost, MaxHosts: maxHosts, TagTTL: time.Minute, ServeStale: true,
		FillIdleTimeout: time.Minute, HeadTimeout: time.Second, RequestTimeout: 5 * time.Second}
	c, err := cache.New(store, []cache.Namespace{ns}, cache.WithRegisterer(reg), cache.WithBreaker(3, 10*time.Second), cache.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return wildcardFixture{c: c, h: h, digests: digests, reg: reg, clk: clk}
}

func hostRepo(host string) route.Repo {
	return route.Repo{Namespace: host, Name: "team/app", Sent: host + "/team/app"}
}

// TestWildcardHostsAreNamespacesBoundedByMaxHosts: each host of the shape
// is its own namespace with its own upstream; at most max_hosts are live,
// the least recently used dropped and built again when asked for.
func TestWildcardHostsAreNamespacesBoundedByMaxHosts(t *testing.T) {
	a, b, c3 := "a.registry.example", "b.registry.example", "c.registry.example"
	f := wildcardCache(t, 2, a, b, c3)
	c, h, digests := f.c, f.h, f.digests
	for _, host := range []string{a, b, a, c3} { // c drops b, the least recently used
		m, err := c.Manifest(t.Context(), hostRepo(host), "v1", nil)
		if err != nil || m.Digest != digests[host] {
			t.Fatalf("%s: %s, %v; want its own upstream's %s", host, m.Digest, err, digests[host])
		}
	}
	if h.built(a) != 1 || h.built(b) != 1 || h.built(c3) != 1 {
		t.Errorf("builds a=%d b=%d c=%d, want 1 each", h.built(a), h.built(b), h.built(c3))
	}
	// b was dropped: asking again builds its upstream again (its tag is
	// still cached, so the manifest comes from disk within the TTL).
	if _, err := c.Manifest(t.Context(), hostRepo(b), "v1", nil); err != nil {
		t.Fatal(err)
	}
	if h.built(b) != 2 {
		t.Errorf("b built %d times, want 2 (dropped at max_hosts, then asked again)", h.built(b))
	}
	if n := h.origins[b].count("Manifest"); n != 1 {
		t.Errorf("b's upstream got %d manifest GETs, want 1: dropping a host must not drop what it cached", n)
	}
	if _, err := c.Manifest(t.Context(), hostRepo("registry.example"), "v1", nil); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("a host not of the shape: %v, want not configured", err)
	}
}

func TestWildcardHostMetricsCarryTheWildcardsName(t *testing.T) {
	a := "a.registry.example"
	f := wildcardCache(t, 4, a)
	c, h, reg := f.c, f.h, f.reg
	if _, err := c.Manifest(t.Context(), hostRepo(a), "v1", nil); err != nil {
		t.Fatal(err)
	}
	h.origins[a].set(func(o *memOrigin) { o.down = true })
	f.clk.Add(2 * time.Minute) // past the tag TTL: revalidation fails, the tag is served stale
	if _, err := c.Manifest(t.Context(), hostRepo(a), "v1", nil); err != nil {
		t.Fatalf("with the host's upstream down: %v, want the stale tag", err)
	}
	if _, err := c.Manifest(t.Context(), hostRepo(a), "v2", nil); !errors.Is(err, ocierr.Unavailable) {
		t.Fatalf("an unknown tag with the host's upstream down: %v", err)
	}
	got := gathered(t, reg, "cairn_cache_stale_served_total")
	if !strings.Contains(got, "namespace="+shape) || strings.Contains(got, a) {
		t.Errorf("stale series %q: want them labelled %s, never with the host", got, shape)
	}
}

// gathered renders a metric family's series as their label sets.
func gathered(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, p := range m.GetLabel() {
				out = append(out, p.GetName()+"="+p.GetValue())
			}
		}
	}
	return strings.Join(out, ",")
}

func TestReloadDropsTheWildcardsLiveHosts(t *testing.T) {
	a := "a.registry.example"
	f := wildcardCache(t, 4, a)
	c, h := f.c, f.h
	if _, err := c.Manifest(t.Context(), hostRepo(a), "v1", nil); err != nil {
		t.Fatal(err)
	}
	nss := c.Namespaces()
	nss[0].TagTTL = time.Hour
	if err := c.UpdateNamespaces(nss); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manifest(t.Context(), hostRepo(a), "v1", nil); err != nil {
		t.Fatal(err)
	}
	if h.built(a) != 2 {
		t.Errorf("after a reload the host's upstream was built %d times, want 2 (new settings, new upstream)", h.built(a))
	}
}
