package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const ociIndex = "application/vnd.oci.image.index.v1+json"

type fixture struct {
	docker, ghcr *counting
	node         *node
	dataDir      string
	img          v1.Image
	idx          v1.ImageIndex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{docker: newUpstream(t), ghcr: newUpstream(t), dataDir: t.TempDir()}
	f.img = randomImage(t, 4096, 2)
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	f.idx = idx
	f.docker.push(t, "library/alpine", "3.19", f.img)
	f.docker.push(t, "library/multi", "1.0", f.idx)
	f.ghcr.push(t, "org/app", "v1", f.img)
	f.docker.reset()
	f.ghcr.reset()
	f.node = startNode(t, testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host()))
	return f
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func mustDigest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestManifestByTagAndDigest(t *testing.T) {
	f := newFixture(t)
	want, err := f.img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	dgst := mustDigest(t, f.img)
	resp, body := get(t, "GET", f.node.url("/v2/library/alpine/manifests/3.19?ns=docker.io"))
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET by tag: status %d, body %q; want 200 and the pushed manifest", resp.StatusCode, body)
	}
	for k, v := range map[string]string{
		"Docker-Content-Digest": dgst,
		"Content-Type":          string(types.DockerManifestSchema2),
		"Content-Length":        fmt.Sprint(len(want)),
		"ETag":                  `"` + dgst + `"`,
		"OCI-Namespace":         "docker.io",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("GET by tag: %s = %q, want %q", k, got, v)
		}
	}
	resp, body = get(t, "HEAD", f.node.url("/v2/library/alpine/manifests/"+dgst))
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Docker-Content-Digest") != dgst || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD by digest: status %d, digest %q, length %d", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), resp.ContentLength)
	}
	before := f.docker.count("GET", "/manifests/3.19") + f.docker.count("GET", "/manifests/"+dgst)
	for range 3 {
		if resp, _ := get(t, "GET", f.node.url("/v2/alpine/manifests/3.19")); resp.StatusCode != 200 {
			t.Fatalf("repeat GET: status %d", resp.StatusCode)
		}
	}
	if after := f.docker.count("GET", "/manifests/3.19") + f.docker.count("GET", "/manifests/"+dgst); after != before {
		t.Errorf("upstream manifest GETs went from %d to %d within tag_ttl, want no new ones", before, after)
	}
}

func TestIndexByteForByte(t *testing.T) {
	f := newFixture(t)
	want, err := f.idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, "GET", f.node.url("/v2/library/multi/manifests/1.0"), "Accept", ociIndex)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("index: status %d, got %d bytes, want the %d pushed bytes", resp.StatusCode, len(body), len(want))
	}
	if got, want := resp.Header.Get("Docker-Content-Digest"), digestOf(want); got != want {
		t.Errorf("index digest %s, want %s", got, want)
	}
	if got := resp.Header.Get("Content-Type"); got != ociIndex {
		t.Errorf("index Content-Type %q, want %q", got, ociIndex)
	}
	// Children are fetched when asked for, not with the index.
	im, _ := f.idx.IndexManifest()
	child := im.Manifests[0].Digest.String()
	if n := f.docker.count("GET", "/manifests/"+child); n != 0 {
		t.Errorf("child manifest fetched %d times before anyone asked, want 0", n)
	}
	resp, body = get(t, "GET", f.node.url("/v2/library/multi/manifests/"+child))
	if resp.StatusCode != 200 || digestOf(body) != child {
		t.Errorf("child: status %d, digest %s, want %s", resp.StatusCode, digestOf(body), child)
	}
}

func TestBlobsAndRange(t *testing.T) {
	f := newFixture(t)
	layers, _ := f.img.Layers()
	l := layers[0]
	want := layerBytes(t, l)
	dgst := mustDigest(t, l)
	path := "/v2/ghcr.io/org/app/blobs/" + dgst

	resp, body := get(t, "GET", f.node.url(path))
	if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Fatalf("cold GET: status %d, %d bytes (want %d), digest %q", resp.StatusCode, len(body), len(want), resp.Header.Get("Docker-Content-Digest"))
	}
	if got := resp.Header.Get("OCI-Namespace"); got != "ghcr.io" {
		t.Errorf("OCI-Namespace %q, want ghcr.io", got)
	}
	tests := []struct {
		rng          string
		status       int
		from, to     int // want[from:to]
		contentRange string
	}{
		{"bytes=10-19", 206, 10, 20, fmt.Sprintf("bytes 10-19/%d", len(want))},
		{"bytes=100-", 206, 100, len(want), fmt.Sprintf("bytes 100-%d/%d", len(want)-1, len(want))},
		{"bytes=-5", 206, len(want) - 5, len(want), fmt.Sprintf("bytes %d-%d/%d", len(want)-5, len(want)-1, len(want))},
		{"", 200, 0, len(want), ""},
		{fmt.Sprintf("bytes=%d-", len(want)), 416, 0, 0, fmt.Sprintf("bytes */%d", len(want))},
	}
	for _, tt := range tests {
		resp, body := get(t, "GET", f.node.url(path), "Range", tt.rng)
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Range") != tt.contentRange {
			t.Errorf("Range %q: status %d, Content-Range %q; want %d, %q", tt.rng, resp.StatusCode, resp.Header.Get("Content-Range"), tt.status, tt.contentRange)
			continue
		}
		if tt.status != 416 && !bytes.Equal(body, want[tt.from:tt.to]) {
			t.Errorf("Range %q: wrong bytes", tt.rng)
		}
		if tt.status == 416 && !strings.Contains(string(body), "RANGE_INVALID") {
			t.Errorf("Range %q: body %s, want an OCI error", tt.rng, body)
		}
	}
	resp, _ = get(t, "HEAD", f.node.url(path))
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD: status %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if n := f.ghcr.count("GET", "/blobs/"+dgst); n != 1 {
		t.Errorf("upstream blob GETs = %d, want 1 (every later read from the cache)", n)
	}
}

func layerBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTagsListPagination(t *testing.T) {
	f := newFixture(t)
	for _, tag := range []string{"a", "b", "c", "d", "e"} {
		f.docker.push(t, "org/many", tag, f.img)
	}
	f.docker.reset()
	var got []string
	next := "/v2/org/many/tags/list?n=2"
	for i := 0; next != "" && i < 10; i++ {
		resp, body := get(t, "GET", f.node.url(next))
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d %s", next, resp.StatusCode, body)
		}
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatal(err)
		}
		if tl.Name != "org/many" {
			t.Errorf("name %q, want the name as sent, org/many", tl.Name)
		}
		got = append(got, tl.Tags...)
		next = linkNext(resp.Header.Get("Link"))
	}
	if strings.Join(got, ",") != "a,b,c,d,e" {
		t.Errorf("paged tags %v, want a..e", got)
	}
}

// linkNext extracts the target of a Link: <...>; rel="next" header.
func linkNext(link string) string {
	if link == "" {
		return ""
	}
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start < 0 || end < start {
		return ""
	}
	return link[start+1 : end]
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	dgst := mustDigest(t, f.img)
	tests := []struct {
		path   string
		status int
		ns     string
		code   string
	}{
		{"/v2/library/alpine/manifests/3.19?ns=docker.io", 200, "docker.io", ""},
		{"/v2/alpine/manifests/3.19?ns=index.docker.io", 200, "docker.io", ""},
		{"/v2/alpine/manifests/3.19", 200, "docker.io", ""},                         // default namespace + library/
		{"/v2/docker.io/alpine/manifests/3.19", 200, "docker.io", ""},               // prefix form
		{"/v2/index.docker.io/library/alpine/manifests/3.19", 200, "docker.io", ""}, // alias prefix
		{"/v2/org/app/manifests/v1?ns=ghcr.io", 200, "ghcr.io", ""},
		{"/v2/ghcr.io/org/app/manifests/" + dgst, 200, "ghcr.io", ""},
		{"/v2/app/manifests/v1?ns=ghcr.io", 404, "ghcr.io", "NAME_UNKNOWN"}, // no library/ outside docker.io: the upstream has no "app"
		{"/v2/quay.io/org/app/manifests/v1", 404, "", "NAME_UNKNOWN"},
		{"/v2/org/app/manifests/v1?ns=quay.io", 404, "", "NAME_UNKNOWN"},
		{"/v2/registry.internal/team/app/manifests/v1", 404, "registry.internal", "MANIFEST_UNKNOWN"}, // hosted: never fetched
		{"/v2/Alpine/manifests/3.19", 400, "", "NAME_INVALID"},
		{"/v2/alpine/manifests/sha256:abc", 400, "", "DIGEST_INVALID"},
		{"/v2/alpine/blobs/sha256:zz", 400, "", "DIGEST_INVALID"},
		{"/v2/alpine/manifests/-bad-tag", 400, "", "MANIFEST_INVALID"},
		{"/v2/alpine/tags/list?n=x", 400, "docker.io", "PAGINATION_NUMBER_INVALID"},
		{"/v2/library/alpine/nothing/here", 404, "", "NAME_UNKNOWN"},
		{"/v2/library/alpine/blobs/uploads/", 405, "docker.io", "UNSUPPORTED"},
	}
	for _, tt := range tests {
		resp, body := get(t, "GET", f.node.url(tt.path))
		if resp.StatusCode != tt.status || resp.Header.Get("OCI-Namespace") != tt.ns {
			t.Errorf("GET %s: status %d, OCI-Namespace %q; want %d, %q (body %s)", tt.path, resp.StatusCode, resp.Header.Get("OCI-Namespace"), tt.status, tt.ns, body)
		}
		if tt.code != "" {
			assertOCIError(t, tt.path, body, tt.code)
		}
	}
	if n := f.docker.count("GET", "/v2/library/alpine/manifests/3.19") + f.docker.count("HEAD", "/v2/library/alpine/manifests/3.19"); n != 1 {
		t.Errorf("upstream asked %d times for library/alpine:3.19 across 5 routes to it, want 1", n)
	}
}

func assertOCIError(t *testing.T, what string, body []byte, code string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != code || e.Errors[0].Message == "" {
		t.Errorf("%s: error body %s, want one error with code %s and a message", what, body, code)
	}
}

// Paths that try to climb out of the name must be refused however they are
// spelled, each with its OCI error, and never reach the upstream; they are
// sent raw, since Go's client would clean them.
func TestPathTraversalRefused(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v2/../../etc/manifests/x", 400, "NAME_INVALID"},
		{"/v2/library/../alpine/manifests/3.19", 400, "NAME_INVALID"},
		{"/v2/library/%2e%2e/alpine/manifests/3.19", 400, "NAME_INVALID"},
		{"/v2/%2e%2e/%2e%2e/blobs/sha256:" + strings.Repeat("a", 64), 400, "NAME_INVALID"},
		{"/v2/library%2falpine/manifests/3.19%00", 400, "MANIFEST_INVALID"}, // the tag holds a NUL
		{"/v2/library/alpine/manifests/..%2f..%2fx", 404, "NAME_UNKNOWN"},   // a reference with slashes: no such route
	} {
		status, body := rawGet(t, f.node.addr(), tt.path)
		if status != tt.status {
			t.Errorf("GET %s: status %d, want %d (body %s)", tt.path, status, tt.status, body)
		}
		assertOCIError(t, "GET "+tt.path, []byte(body), tt.code)
	}
	for _, u := range []*counting{f.docker, f.ghcr} {
		if n := u.count("GET", "") + u.count("HEAD", ""); n != 0 {
			t.Errorf("an upstream got %d requests for paths cairn refused, want 0", n)
		}
	}
}

func TestManifestOver4MiBRefused(t *testing.T) {
	f := newFixture(t)
	big := bytes.Repeat([]byte(" "), 4<<20)
	big = append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"pad":"`), big...)
	big = append(big, []byte(`"}}`)...)
	req, _ := http.NewRequest("PUT", f.docker.srv.URL+"/v2/library/huge/manifests/v1", bytes.NewReader(big))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("seeding a 4 MiB manifest: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, body := get(t, "GET", f.node.url("/v2/library/huge/manifests/v1"))
	if resp.StatusCode < 400 || resp.StatusCode >= 600 {
		t.Fatalf("over-size manifest: status %d, want an error", resp.StatusCode)
	}
	assertOCIError(t, "over-size manifest", body, "MANIFEST_INVALID")
	if resp, _ := get(t, "GET", f.node.url("/v2/library/huge/manifests/"+digestOf(big))); resp.StatusCode == 200 {
		t.Errorf("over-size manifest was cached")
	}
}

// A lying upstream (bytes that do not match the digest) never gets its
// bytes committed, and the client never receives the bad blob whole.
func TestLyingUpstreamNotCached(t *testing.T) {
	f := newFixture(t)
	layers, _ := f.img.Layers()
	want := layerBytes(t, layers[0])
	dgst := mustDigest(t, layers[0])
	path := "/v2/library/alpine/blobs/" + dgst
	f.docker.mu.Lock()
	f.docker.lie = true
	f.docker.mu.Unlock()
	resp, err := http.Get(f.node.url(path))
	if err == nil {
		body, rerr := readAll(resp)
		if rerr == nil && len(body) == len(want) {
			t.Fatalf("a corrupted blob was delivered whole (status %d)", resp.StatusCode)
		}
	}
	f.docker.mu.Lock()
	f.docker.lie = false
	f.docker.mu.Unlock()
	resp2, body := get(t, "GET", f.node.url(path))
	if resp2.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("after the upstream recovered: status %d, right bytes %v", resp2.StatusCode, bytes.Equal(body, want))
	}
	if n := f.docker.count("GET", "/blobs/"+dgst); n != 2 {
		t.Errorf("upstream blob GETs %d, want 2 (the bad fill was not cached)", n)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	f := newFixture(t)
	layers, _ := f.img.Layers()
	dgst := mustDigest(t, layers[1])
	want := layerBytes(t, layers[1])
	idxWant, _ := f.idx.RawManifest()
	paths := []string{"/v2/library/alpine/manifests/3.19", "/v2/library/multi/manifests/1.0", "/v2/library/alpine/blobs/" + dgst}
	for _, p := range paths {
		if resp, _ := get(t, "GET", f.node.url(p)); resp.StatusCode != 200 {
			t.Fatalf("warm-up GET %s: %d", p, resp.StatusCode)
		}
	}
	f.node.stop(t)
	f.docker.srv.Close() // the upstream is gone for good
	cfg := testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host())
	n := startNode(t, cfg)
	resp, body := get(t, "GET", n.url(paths[1]))
	if resp.StatusCode != 200 || !bytes.Equal(body, idxWant) {
		t.Errorf("index after restart: status %d", resp.StatusCode)
	}
	resp, body = get(t, "GET", n.url(paths[2]))
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("blob after restart: status %d", resp.StatusCode)
	}
	resp, _ = get(t, "GET", n.url(paths[0]))
	if resp.StatusCode != 200 {
		t.Errorf("tag after restart: status %d", resp.StatusCode)
	}
	resp, body = get(t, "GET", n.url("/v2/library/alpine/manifests/never-seen"))
	if resp.StatusCode != 503 {
		t.Errorf("uncached tag with the upstream down: status %d, want 503", resp.StatusCode)
	}
	assertOCIError(t, "uncached tag, upstream down", body, "UNAVAILABLE")
}

// A 429 from the upstream reaches the client as TOOMANYREQUESTS with the
// upstream's Retry-After, when nothing cached can answer instead.
func TestUpstream429PassedOn(t *testing.T) {
	f := newFixture(t)
	f.docker.mu.Lock()
	f.docker.throttle = true
	f.docker.mu.Unlock()
	resp, body := get(t, "GET", f.node.url("/v2/library/alpine/manifests/3.19"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("status %d, Retry-After %q; want 429 and 7", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	assertOCIError(t, "429", body, "TOOMANYREQUESTS")
}

func TestAdminEndpointsAndAccessLog(t *testing.T) {
	f := newFixture(t)
	if resp, _ := get(t, "GET", f.node.url("/v2/alpine/manifests/3.19")); resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d", resp.StatusCode)
	}
	admin := "http://" + f.node.s.adminLn.Addr().String()
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := get(t, "GET", admin+p); resp.StatusCode != 200 {
			t.Errorf("%s: status %d", p, resp.StatusCode)
		}
	}
	_, body := get(t, "GET", admin+"/metrics")
	for _, want := range []string{
		`cairn_build_info{`,
		`cairn_http_requests_total{method="GET",route="manifest",status="200"} 1`,
		`cairn_http_request_duration_seconds_bucket{method="GET",route="manifest"`,
		`cairn_cache_requests_total{kind="tag",result="miss"} 1`,
		`cairn_upstream_requests_total{endpoint="` + strings.TrimPrefix(f.docker.srv.URL, "http://") + `",namespace="docker.io",op="manifest_get",status="200"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	lines := 0
	for line := range strings.Lines(f.node.logs.String()) {
		if strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"path":"/v2/alpine/manifests/3.19"`) &&
			strings.Contains(line, `"status":200`) && strings.Contains(line, `"repo":"docker.io/library/alpine"`) {
			lines++
		}
	}
	if lines != 1 {
		t.Errorf("%d access lines for the request, want 1", lines)
	}
}
