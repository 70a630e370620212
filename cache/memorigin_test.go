package cache_test

// The cache's Origin seam driven by a second implementation, in memory:
// fills, a resume after a broken body, serve-stale, the breaker, ranked
// owners and content negotiation work through any Origin, not only
// through the upstream client.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/storage"
)

// memOrigin is an Origin over maps. down fails every call with
// UNAVAILABLE; breakAt cuts the next blob body after that many bytes (once).
type memOrigin struct {
	mu        sync.Mutex
	manifests map[string]oci.Manifest // by digest
	tags      map[string]string       // repo:tag -> digest
	blobs     map[string][]byte
	down      bool
	hang      bool // OpenBlob waits for its ctx to end
	breakAt   int64
	calls     map[string]int // method -> count
	offsets   []int64        // OpenBlob offsets, in order
}

func newMemOrigin() *memOrigin {
	return &memOrigin{manifests: map[string]oci.Manifest{}, tags: map[string]string{}, blobs: map[string][]byte{}, calls: map[string]int{}}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (o *memOrigin) putBlob(b []byte) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := digestOf(b)
	o.blobs[d] = b
	return d
}

func (o *memOrigin) putManifest(repo, tag, mediaType string, body []byte) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := digestOf(body)
	o.manifests[d] = oci.Manifest{Descriptor: oci.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body))}, Body: body}
	if tag != "" {
		o.tags[repo+":"+tag] = d
	}
	return d
}

func (o *memOrigin) set(f func(*memOrigin)) { o.mu.Lock(); defer o.mu.Unlock(); f(o) }
func (o *memOrigin) count(m string) int     { o.mu.Lock(); defer o.mu.Unlock(); return o.calls[m] }

// enter counts a call and says whether the origin is down.
func (o *memOrigin) enter(method string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls[method]++
	if o.down {
		return fmt.Errorf("memory origin down: %w", ocierr.Unavailable)
	}
	return nil
}

func (o *memOrigin) lookup(repo, ref string) (oci.Manifest, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := ref
	if !strings.HasPrefix(ref, "sha256:") {
		d = o.tags[repo+":"+ref]
	}
	m, ok := o.manifests[d]
	if !ok {
		return oci.Manifest{}, fmt.Errorf("%s:%s: %w", repo, ref, ocierr.ManifestUnknown)
	}
	return m, nil
}

func (o *memOrigin) Manifest(_ context.Context, repo, ref string) (*oci.Manifest, error) {
	if err := o.enter("Manifest"); err != nil {
		return nil, err
	}
	m, err := o.lookup(repo, ref)
	return &m, err
}

func (o *memOrigin) HeadManifest(_ context.Context, repo, ref string) (oci.Descriptor, error) {
	if err := o.enter("HeadManifest"); err != nil {
		return oci.Descriptor{}, err
	}
	m, err := o.lookup(repo, ref)
	return m.Descriptor, err
}

func (o *memOrigin) Tags(_ context.Context, repo string, _ int, _ string) ([]string, bool, error) {
	if err := o.enter("Tags"); err != nil {
		return nil, false, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var tags []string
	for k := range o.tags {
		if r, t, _ := strings.Cut(k, ":"); r == repo {
			tags = append(tags, t)
		}
	}
	return tags, false, nil
}

func (o *memOrigin) Referrers(context.Context, string, string, string) ([]byte, bool, error) {
	if err := o.enter("Referrers"); err != nil {
		return nil, false, err
	}
	return nil, false, fmt.Errorf("memory origin: %w: %w", oci.ErrNoReferrersAPI, ocierr.ManifestUnknown)
}

func (o *memOrigin) HeadBlob(_ context.Context, _, digest string) (oci.Descriptor, error) {
	if err := o.enter("HeadBlob"); err != nil {
		return oci.Descriptor{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.blobs[digest]
	if !ok {
		return oci.Descriptor{}, fmt.Errorf("%s: %w", digest, ocierr.BlobUnknown)
	}
	return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: digest, Size: int64(len(b))}, nil
}

func (o *memOrigin) OpenBlob(ctx context.Context, _, digest string, offset int64) (*oci.RemoteBlob, error) {
	if err := o.enter("OpenBlob"); err != nil {
		return nil, err
	}
	o.mu.Lock()
	hang := o.hang
	o.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.offsets = append(o.offsets, offset)
	b, ok := o.blobs[digest]
	if !ok {
		return nil, fmt.Errorf("%s: %w", digest, ocierr.BlobUnknown)
	}
	var body io.Reader = bytes.NewReader(b[offset:])
	if o.breakAt > 0 {
		body = io.MultiReader(io.LimitReader(body, o.breakAt-offset), errReader{})
		o.breakAt = 0
	}
	return &oci.RemoteBlob{Body: io.NopCloser(body), Offset: offset, Size: int64(len(b))}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by the test") }

// memCache is a cache whose docker.io namespace reads from o.
func memCache(t *testing.T, o cache.Origin, opts ...cache.Option) (*cache.Cache, *storage.Store, *clock) {
	t.Helper()
	return memCacheIdle(t, o, time.Minute, opts...)
}

// memCacheIdle is memCache with the namespace's fill idle timeout.
func memCacheIdle(t *testing.T, o cache.Origin, idle time.Duration, opts ...cache.Option) (*cache.Cache, *storage.Store, *clock) {
	t.Helper()
	c, store, clk := cacheWith(t, func(func() time.Time) cache.Origin { return o }, func(ns *cache.Namespace) { ns.FillIdleTimeout = idle }, opts...)
	t.Cleanup(c.Close)
	return c, store, clk
}

func TestFillThroughAnyOriginResumesAfterABrokenBody(t *testing.T) {
	o := newMemOrigin()
	data := bytes.Repeat([]byte("cairn-layer."), 300_000) // 3.6 MB: several fill chunks
	dgst := o.putBlob(data)
	o.set(func(o *memOrigin) { o.breakAt = 1 << 20 })
	c, store, _ := memCache(t, o)
	got, err := readBlob(t, c, dgst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d bytes", len(got), err, len(data))
	}
	o.mu.Lock()
	offsets := o.offsets
	o.mu.Unlock()
	if len(offsets) != 2 || offsets[0] != 0 || offsets[1] < 256<<10 || offsets[1] > 1<<20 {
		t.Errorf("OpenBlob offsets %v, want 0 then a resume at or before the break (1 MiB)", offsets)
	}
	// Under 4 MiB, a reader's last byte waits for the commit.
	if info, err := store.Stat(dgst); err != nil || info.Size != int64(len(data)) {
		t.Errorf("after the read: %+v, %v; want the blob stored", info, err)
	}
}

func TestServeStaleAndBreakerThroughAnyOrigin(t *testing.T) {
	o := newMemOrigin()
	d := o.putManifest("library/a", "v1", oci.MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
	c, _, clk := memCache(t, o)
	if m, err := c.Manifest(t.Context(), repo("library/a"), "v1", nil); err != nil || m.Digest != d {
		t.Fatalf("cold: %s, %v", m.Digest, err)
	}
	o.set(func(o *memOrigin) { o.down = true })
	clk.Add(2 * time.Minute)
	for i := range 3 { // WithBreaker(3, ...): three outages open it
		if m, err := c.Manifest(t.Context(), repo("library/a"), "v1", nil); err != nil || m.Digest != d {
			t.Fatalf("stale %d: %s, %v; want the last known %s", i, m.Digest, err, d)
		}
	}
	before := o.count("HeadManifest")
	if m, err := c.Manifest(t.Context(), repo("library/a"), "v1", nil); err != nil || m.Digest != d {
		t.Fatalf("with the breaker open: %s, %v", m.Digest, err)
	}
	if after := o.count("HeadManifest"); after != before {
		t.Errorf("the open breaker let %d HEADs reach the origin", after-before)
	}
	if _, err := c.Manifest(t.Context(), repo("library/b"), "v1", nil); !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("an unknown tag with the origin down: %v, want UNAVAILABLE", err)
	}
}

// passedOver renders cairn_origin_passed_over_total's series as
// "namespace origin reason count" lines.
func passedOver(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if mf.GetName() != "cairn_origin_passed_over_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s %s %s %g", l["namespace"], l["origin"], l["reason"], m.GetCounter().GetValue()))
		}
	}
	return strings.Join(lines, "\n")
}

// ranked is an Owners that returns a fixed ranking for every key.
type ranked []cache.Owner

func (r ranked) Owners(string, string) []cache.Owner { return append([]cache.Owner(nil), r...) }

func TestOwnersAreAskedInRankBeforeTheUpstream(t *testing.T) {
	up, dead, peer := newMemOrigin(), newMemOrigin(), newMemOrigin()
	data := []byte("a layer the second owner holds")
	dgst := peer.putBlob(data)
	up.putBlob(data)
	dead.set(func(o *memOrigin) { o.down = true })
	reg := prometheus.NewRegistry()
	c, _, _ := memCache(t, up, cache.WithRegisterer(reg), cache.WithOwners(ranked{
		{Name: "edge-b", Origin: dead}, {Name: "edge-c", Origin: peer}, {Name: "self", Self: true}, {Name: "edge-d", Origin: newMemOrigin()},
	}))
	got, err := readBlob(t, c, dgst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if n := dead.count("OpenBlob"); n != 1 {
		t.Errorf("the first owner was asked %d times, want 1", n)
	}
	if n := peer.count("OpenBlob"); n != 1 {
		t.Errorf("the second owner was asked %d times, want 1", n)
	}
	if n := up.count("OpenBlob"); n != 0 {
		t.Errorf("the upstream was asked %d times, want 0: an owner answered", n)
	}
	if got := passedOver(t, reg); got != "docker.io peer unavailable 1" {
		t.Errorf("passed over: %q; want the dead owner once, unavailable", got)
	}

	// This node first in rank: it fills from the upstream itself.
	c2, _, _ := memCache(t, up, cache.WithOwners(ranked{{Name: "self", Self: true}, {Name: "edge-c", Origin: peer}}))
	if _, err := readBlob(t, c2, dgst); err != nil {
		t.Fatal(err)
	}
	if n := up.count("OpenBlob"); n != 1 {
		t.Errorf("self first: the upstream was asked %d times, want 1", n)
	}
	if n := peer.count("OpenBlob"); n != 1 {
		t.Errorf("self first: an owner ranked after this node was asked")
	}
}

// An owner peer that never answers a blob fill is passed over for the
// upstream within the fill's idle timeout: the fill completes, and the
// pass is counted as a timeout.
func TestFillPassesOverAPeerThatHangs(t *testing.T) {
	up, peer := newMemOrigin(), newMemOrigin()
	data := []byte("a layer behind a hanging owner")
	dgst := up.putBlob(data)
	peer.set(func(o *memOrigin) { o.hang = true })
	reg := prometheus.NewRegistry()
	c, _, _ := memCacheIdle(t, up, 400*time.Millisecond, cache.WithRegisterer(reg),
		cache.WithOwners(ranked{{Name: "edge-b", Origin: peer}, {Name: "self", Self: true}}))
	got, err := readBlob(t, c, dgst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v; want the upstream's bytes", got, err)
	}
	if n := up.count("OpenBlob"); n != 1 {
		t.Errorf("the upstream was asked %d times, want 1", n)
	}
	if got := passedOver(t, reg); got != "docker.io peer timeout 1" {
		t.Errorf("passed over: %q; want the hanging owner once, timeout", got)
	}
}

// An index of linux/arm64 then linux/amd64, in memory.
func memIndex(t *testing.T, o *memOrigin) (index, arm, amd string) {
	t.Helper()
	child := func(arch string) (string, int) {
		body := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"digest":"sha256:%064d"},"layers":[],"annotations":{"arch":%q}}`, oci.MediaTypeOCIManifest, 0, arch))
		return o.putManifest("library/a", "", oci.MediaTypeOCIManifest, body), len(body)
	}
	arm, armSize := child("arm64")
	amd, amdSize := child("amd64")
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex,
		"manifests": []map[string]any{
			{"mediaType": oci.MediaTypeOCIManifest, "digest": arm, "size": armSize, "platform": map[string]string{"os": "linux", "architecture": "arm64"}},
			{"mediaType": oci.MediaTypeOCIManifest, "digest": amd, "size": amdSize, "platform": map[string]string{"os": "linux", "architecture": "amd64"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return o.putManifest("library/a", "multi", oci.MediaTypeOCIIndex, body), arm, amd
}

func TestTagNegotiationFromOneStoredManifest(t *testing.T) {
	o := newMemOrigin()
	index, arm, amd := memIndex(t, o)
	c, _, _ := memCache(t, o)
	cases := []struct {
		name   string
		accept []string
		want   string
	}{
		{"empty", nil, index},
		{"any", []string{"*/*"}, index},
		{"docker list only", []string{oci.MediaTypeDockerList, oci.MediaTypeOCIManifest}, index},
		{"index-less", []string{oci.MediaTypeOCIManifest, oci.MediaTypeDockerManifest}, amd},
		{"docker image only", []string{oci.MediaTypeDockerManifest}, amd},
	}
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Go(func() {
			m, err := c.Manifest(t.Context(), repo("library/a"), "multi", tc.accept)
			if err != nil || m.Digest != tc.want {
				t.Errorf("%s: %s, %v; want %s", tc.name, m.Digest, err, tc.want)
			}
		})
	}
	wg.Wait()
	if n := o.count("Manifest"); n != 2 {
		t.Errorf("%d manifest GETs at the origin, want 2: the tag once for every Accept, and the amd64 child", n)
	}
	// Arm64 is the first child, never chosen; by digest it is served as is.
	if m, err := c.Manifest(t.Context(), repo("library/a"), arm, []string{oci.MediaTypeDockerManifest}); err != nil || m.Digest != arm {
		t.Errorf("by digest: %s, %v; want %s", m.Digest, err, arm)
	}
	if m, err := c.Manifest(t.Context(), repo("library/a"), index, []string{oci.MediaTypeDockerManifest}); err != nil || m.Digest != index || m.MediaType != oci.MediaTypeOCIIndex {
		t.Errorf("the index by digest to an index-less client: %s %s, %v; want the index itself", m.Digest, m.MediaType, err)
	}
}

func TestDefaultPlatformChoosesTheChild(t *testing.T) {
	o := newMemOrigin()
	_, arm, _ := memIndex(t, o)
	c, _, _ := memCache(t, o, cache.WithDefaultPlatform("linux/arm64"))
	if m, err := c.Manifest(t.Context(), repo("library/a"), "multi", []string{oci.MediaTypeOCIManifest}); err != nil || m.Digest != arm {
		t.Errorf("default platform linux/arm64: %s, %v; want %s", m.Digest, err, arm)
	}
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ns := cache.Namespace{Name: "docker.io", Origin: o, TagTTL: time.Minute, FillIdleTimeout: time.Minute}
	if _, err := cache.New(store, []cache.Namespace{ns}, cache.WithDefaultPlatform("amd64")); err == nil || !strings.Contains(err.Error(), "os/arch") {
		t.Errorf("a platform without an OS: %v, want an error saying os/arch", err)
	}
}
