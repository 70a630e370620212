package upstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// group builds a group over clients of us, in order; pullOnly marks the
// endpoints (by index) that may not resolve.
func group(t *testing.T, o GroupOptions, members ...Member) *Group {
	t.Helper()
	g, err := NewGroup("registry.example", members, o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func both(c *Client) Member     { return Member{Client: c, Pull: true, Resolve: true} }
func pullOnly(c *Client) Member { return Member{Client: c, Pull: true} }

func TestGroupResolvesTagsOnlyAtResolveEndpoints(t *testing.T) {
	mirror, main := newTestUpstream(t), newTestUpstream(t)
	img := mirror.pushImage(t, "library/app:v1")
	_, dgst := rawOf(t, img)
	layer, layerDigest := firstLayer(t, img)
	// The mirror lags: its v1 is the old image; the main registry's v1 moved.
	moved := main.pushImage(t, "library/app:v1")
	_, movedDigest := rawOf(t, moved)
	mirror.use()
	main.use()
	g := group(t, GroupOptions{}, pullOnly(mirror.client(t)), both(main.client(t)))

	m, err := g.Manifest(t.Context(), "library/app", "v1")
	if err != nil || m.Digest != movedDigest {
		t.Fatalf("Manifest by tag: %v, %+v; want the resolve endpoint's %s", err, m, movedDigest)
	}
	if _, err := g.HeadManifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Tags(t.Context(), "library/app", 0, ""); err != nil {
		t.Fatal(err)
	}
	if n := mirror.count("manifest") + mirror.count("tags"); n != 0 {
		t.Errorf("the pull-only endpoint was asked %d times about a tag or a tag list", n)
	}
	// Content by digest comes from the first pull endpoint.
	if _, err := g.Manifest(t.Context(), "library/app", dgst); err != nil {
		t.Fatal(err)
	}
	b, err := g.OpenBlob(t.Context(), "library/app", layerDigest, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b.Body)
	b.Body.Close()
	if string(got) != string(layer) {
		t.Error("blob bytes differ")
	}
	if mirror.count("manifest") != 1 || mirror.count("blob") != 1 {
		t.Errorf("mirror: %d manifest and %d blob requests, want 1 and 1", mirror.count("manifest"), mirror.count("blob"))
	}
	if n := main.count("blob"); n != 0 {
		t.Errorf("the resolve endpoint served %d blob requests the mirror had", n)
	}
}

func TestGroupFailsOverAndEachEndpointHasItsBreaker(t *testing.T) {
	mirror, main := newTestUpstream(t), newTestUpstream(t)
	img := main.pushImage(t, "library/app:v1")
	_, layerDigest := firstLayer(t, img)
	mirror.use(status(isKind("blob"), 503, nil, "down"))
	main.use()
	now := time.Unix(1e9, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	g := group(t, GroupOptions{BreakerFailures: 2, BreakerCooldown: time.Minute, Metrics: m, Now: clock},
		pullOnly(mirror.client(t, WithRetries(0), WithMetrics(m))), both(main.client(t, WithMetrics(m))))

	for i := range 4 {
		if _, err := g.HeadBlob(t.Context(), "library/app", layerDigest); err != nil {
			t.Fatalf("HeadBlob %d with the mirror down: %v", i, err)
		}
	}
	// Two outages open the mirror's breaker: the next two skip it.
	if n := mirror.count("blob"); n != 2 {
		t.Errorf("the failing mirror got %d blob requests, want 2 (then its breaker is open)", n)
	}
	if n := main.count("blob"); n != 4 {
		t.Errorf("the next endpoint got %d blob requests, want 4", n)
	}
	if v := testutil.ToFloat64(m.failovers.WithLabelValues("registry.example", mirror.host(), "circuit_open")); v != 2 {
		t.Errorf("failovers{reason=circuit_open} = %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.failovers.WithLabelValues("registry.example", mirror.host(), "unavailable")); v != 2 {
		t.Errorf("failovers{reason=unavailable} = %v, want 2", v)
	}
	// After the cooldown one request probes the mirror again; it is back.
	mirror.use()
	if err := remote.Write(mirror.ref(t, "library/app:v1"), img, remote.WithTransport(mirror.srv.Client().Transport)); err != nil {
		t.Fatal(err) // now the mirror holds the content too
	}
	mirror.use()
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	before := main.count("blob")
	if _, err := g.HeadBlob(t.Context(), "library/app", layerDigest); err != nil {
		t.Fatal(err)
	}
	if mirror.count("blob") != 1 || main.count("blob") != before {
		t.Errorf("after the cooldown: mirror %d, main %d more; want the mirror to answer alone", mirror.count("blob"), main.count("blob")-before)
	}
	// Every endpoint failing: the last one's error, an outage.
	mirror.use(status(func(*http.Request) bool { return true }, 503, nil, "down"))
	main.use(status(func(*http.Request) bool { return true }, 503, nil, "down"))
	if _, err := g.HeadBlob(t.Context(), "library/app", layerDigest); !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("all endpoints down: %v, want UNAVAILABLE", err)
	}
}

func TestGroupSendsCredentialsOnlyToTheirEndpoint(t *testing.T) {
	mirror, main := newTestUpstream(t), newTestUpstream(t)
	img := main.pushImage(t, "library/app:v1")
	_, layerDigest := firstLayer(t, img)
	var seen sync.Mutex
	var mirrorAuth []string
	mirror.use(func(w http.ResponseWriter, r *http.Request) bool {
		seen.Lock()
		defer seen.Unlock()
		if h := r.Header.Get("Authorization"); h != "" {
			mirrorAuth = append(mirrorAuth, r.URL.Path+" "+h)
		}
		return false // the mirror lacks the blob: 404, next endpoint
	})
	var tokens tokenLog
	main.use(requireBearer(main, "bot", "hub-secret", &tokens))
	g := group(t, GroupOptions{}, pullOnly(mirror.client(t)), both(main.client(t, WithBasic("bot", "hub-secret"))))
	b, err := g.OpenBlob(t.Context(), "library/app", layerDigest, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Body.Close()
	if _, err := g.Manifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if len(mirrorAuth) != 0 {
		t.Errorf("the mirror endpoint saw credentials: %q", mirrorAuth)
	}
	if len(tokens.scopes) == 0 {
		t.Error("the credentialed endpoint's token realm was never asked")
	}
}

func TestEndpointUnderAPath(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	const prefix = "/artifactory/api/docker/docker-remote"
	var paths []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		r.URL.Path = rest
		u.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New("artifactory.example", srv.URL+prefix+"/", withBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatalf("Manifest under %s: %v", prefix, err)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, prefix+"/v2/") {
			t.Errorf("request to %s, outside the API's path", p)
		}
	}
	if _, err := New("x.example", srv.URL+"/api/v2"); err == nil {
		t.Error("a URL whose path ends in /v2 was accepted")
	}
}

func TestRepositoryPrefix(t *testing.T) {
	u := newTestUpstream(t)
	img := u.pushImage(t, "dockerhub-proxy/library/app:v1")
	_, dgst := rawOf(t, img)
	_, layerDigest := firstLayer(t, img)
	c := u.client(t, WithRepositoryPrefix("dockerhub-proxy/"))
	m, err := c.Manifest(t.Context(), "library/app", "v1")
	if err != nil || m.Digest != dgst {
		t.Fatalf("Manifest: %v %+v", err, m)
	}
	if _, err := c.HeadBlob(t.Context(), "library/app", layerDigest); err != nil {
		t.Fatal(err)
	}
	if tags, _, err := c.Tags(t.Context(), "library/app", 0, ""); err != nil || len(tags) != 1 {
		t.Fatalf("Tags: %v %v", tags, err)
	}
	if _, err := New("x.example", u.srv.URL, WithRepositoryPrefix("no-slash")); err == nil {
		t.Error("a prefix without its final / was accepted")
	}
}

// TestMaxConnectionsHeldUnderAHerd: many different blobs at once never put
// more requests in flight at the endpoint than max_connections, and all of
// them are served.
func TestMaxConnectionsHeldUnderAHerd(t *testing.T) {
	const limit, herd = 2, 8
	u := newTestUpstream(t)
	var digests []string
	for range herd / 2 {
		img := u.pushImage(t, "library/app:v1")
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			digests = append(digests, d.String())
		}
	}
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	inflight, peak, done := 0, 0, 0
	u.use(func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) != "blob" {
			return false
		}
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		cond.Broadcast()
		// Hold each request until the endpoint is full (or every other
		// one is done): a client over the limit would show in peak.
		for inflight < limit && done+inflight < herd {
			cond.Wait()
		}
		mu.Unlock()
		u.reg.ServeHTTP(w, r)
		mu.Lock()
		inflight--
		done++
		cond.Broadcast()
		mu.Unlock()
		return true
	})
	c := u.client(t, WithLimits(limit, 0))
	var wg sync.WaitGroup
	errs := make(chan error, herd)
	for _, d := range digests {
		wg.Go(func() {
			b, err := c.OpenBlob(t.Context(), "library/app", d, 0)
			if err != nil {
				errs <- err
				return
			}
			_, err = io.Copy(io.Discard, b.Body)
			b.Body.Close()
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a blob of the herd: %v", err)
		}
	}
	if peak > limit {
		t.Errorf("%d requests in flight at the endpoint, max_connections %d", peak, limit)
	}
	if done != herd {
		t.Errorf("%d blobs served, want %d", done, herd)
	}
}

func TestLimitsWaitBoundedThenAnswerBusy(t *testing.T) {
	u := newTestUpstream(t)
	img := u.pushImage(t, "library/app:v1")
	_, layerDigest := firstLayer(t, img)
	u.use()

	t.Run("max_connections", func(t *testing.T) {
		c := u.client(t, WithLimits(1, 0), withMaxWait(20*time.Millisecond))
		held, err := c.OpenBlob(t.Context(), "library/app", layerDigest, 0) // holds the one slot
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.HeadBlob(t.Context(), "library/app", layerDigest)
		var busy *BusyError
		if !errors.As(err, &busy) || !errors.Is(err, ocierr.Unavailable) || !errors.Is(err, ocierr.ErrBusy) || busy.RetryAfter() <= 0 {
			t.Fatalf("second request with the slot held: %v; want a BusyError (UNAVAILABLE, ErrBusy, Retry-After)", err)
		}
		held.Body.Close() // frees the slot
		if _, err := c.HeadBlob(t.Context(), "library/app", layerDigest); err != nil {
			t.Fatalf("after the body was closed: %v", err)
		}
	})
	t.Run("max_requests_per_second", func(t *testing.T) {
		c := u.client(t, WithLimits(0, 1), withMaxWait(20*time.Millisecond))
		before := u.count("blob")
		if _, err := c.HeadBlob(t.Context(), "library/app", layerDigest); err != nil {
			t.Fatal(err)
		}
		if _, err := c.HeadBlob(t.Context(), "library/app", layerDigest); !errors.Is(err, ocierr.ErrBusy) {
			t.Fatalf("second request within the second: %v, want ErrBusy", err)
		}
		if n := u.count("blob") - before; n != 1 {
			t.Errorf("%d requests reached the endpoint, want 1", n)
		}
	})
}

// TestTooManyRequestsOnManifestsLeavesBlobsRunning: Docker Hub counts
// manifest GETs; a 429 on one pauses manifest GETs only, for its
// Retry-After, and blob reads and HEADs go on.
func TestTooManyRequestsOnManifestsLeavesBlobsRunning(t *testing.T) {
	u := newTestUpstream(t)
	img := u.pushImage(t, "library/app:v1")
	_, layerDigest := firstLayer(t, img)
	u.use(status(func(r *http.Request) bool { return r.Method == http.MethodGet && kind(r.URL.Path) == "manifest" },
		429, map[string]string{"Retry-After": "60"}, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull limit"}]}`))
	now := time.Unix(1e9, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	c := u.client(t, WithClock(clock), WithMetrics(m))

	for i := range 3 {
		_, err := c.Manifest(t.Context(), "library/app", "v1")
		if !errors.Is(err, ocierr.TooManyRequests) {
			t.Fatalf("manifest GET %d: %v, want TOOMANYREQUESTS", i, err)
		}
	}
	if n := u.count("manifest"); n != 1 {
		t.Errorf("%d manifest GETs reached the endpoint, want 1 (then paused)", n)
	}
	if v := testutil.ToFloat64(m.paused.WithLabelValues("registry.example", u.host(), OpManifestGet)); v != float64(now.Add(time.Minute).Unix()) {
		t.Errorf("paused_until = %v, want %d", v, now.Add(time.Minute).Unix())
	}
	if v := testutil.ToFloat64(m.refusals.WithLabelValues("registry.example", u.host(), OpManifestGet, "paused")); v != 2 {
		t.Errorf("refused{reason=paused} = %v, want 2", v)
	}
	b, err := c.OpenBlob(t.Context(), "library/app", layerDigest, 0)
	if err != nil {
		t.Fatalf("blob during the manifest pause: %v", err)
	}
	b.Body.Close()
	if _, err := c.HeadManifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatalf("manifest HEAD during the GET pause: %v", err)
	}
	// Past the Retry-After, manifest GETs go out again.
	u.use()
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if _, err := c.Manifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatalf("manifest GET after the pause: %v", err)
	}
}
