package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/cairn-mirror/cairn/internal/config"
)

// A client that stops reading for longer than fill_idle_timeout must not
// fail the fill: the idle timeout is about the upstream.
func TestPausedClientDoesNotFailFill(t *testing.T) {
	f := newFixture(t)
	img := randomImage(t, 16<<20, 1) // more than loopback socket buffers hold
	f.docker.push(t, "library/big", "1", img)
	f.docker.reset()
	f.node.stop(t)
	cfg := testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host())
	d := config.Duration(time.Second)
	for i := range cfg.Upstreams {
		cfg.Upstreams[i].FillIdleTimeout = &d
	}
	n := startNode(t, cfg)
	layers, _ := img.Layers()
	dgst := mustDigest(t, layers[0])
	conn, err := net.Dial("tcp", n.addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /v2/library/big/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", dgst)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a paused client, not a disconnected one
	got, _ := io.Copy(io.Discard, resp.Body)
	conn.Close()
	t.Logf("client got %d of %d bytes", got, resp.ContentLength)
	time.Sleep(500 * time.Millisecond)
	get(t, "GET", n.url("/v2/library/big/blobs/"+dgst))
	if c := f.docker.count("GET", "/blobs/"+dgst); c != 1 {
		t.Errorf("upstream blob GETs %d, want 1: the paused client's fill was thrown away", c)
	}
}

// negotiating is a registry that, like distribution and Docker Hub, answers
// a tag whose manifest is an index with the first child when the client's
// Accept lacks the index's media type. headNoLength drops Content-Length on
// blob HEADs.
func negotiatingUpstream(t *testing.T, headNoLength bool) (*httptest.Server, *string) {
	reg := registry.New(registry.Logger(nopLogger()))
	var child string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/manifests/1.0") && !strings.Contains(r.Header.Get("Accept"), ociIndex) && child != "" {
			r.URL.Path = strings.TrimSuffix(r.URL.Path, "1.0") + child
		}
		if headNoLength && r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			w.Header().Set("Docker-Content-Digest", rec.Header().Get("Docker-Content-Digest"))
			w.WriteHeader(rec.Code)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &child
}

// A client that accepts the Docker list but not the OCI index gets the
// upstream's platform fallback; that answer must not repoint the tag for
// every later client.
func TestNarrowAcceptDoesNotRepointTag(t *testing.T) {
	srv, child := negotiatingUpstream(t, false)
	up := &counting{srv: srv}
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	up.push(t, "org/multi", "1.0", idx)
	im, _ := idx.IndexManifest()
	*child = im.Manifests[0].Digest.String()
	idxDigest := mustDigest(t, idx)

	docker := newUpstream(t)
	n := startNode(t, testConfig(t, t.TempDir(), docker.host(), up.host()))
	narrow := "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
	resp, _ := get(t, "GET", n.url("/v2/ghcr.io/org/multi/manifests/1.0"), "Accept", narrow)
	t.Logf("narrow client got %s", resp.Header.Get("Docker-Content-Digest"))
	full := "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
	resp, _ = get(t, "GET", n.url("/v2/ghcr.io/org/multi/manifests/1.0"), "Accept", full)
	if got := resp.Header.Get("Docker-Content-Digest"); got != idxDigest {
		t.Errorf("full client after a narrow one got %s, want the index %s", got, idxDigest)
	}
}

// HEAD on an uncached blob whose upstream HEAD has no Content-Length must
// not answer a negative length.
func TestHeadBlobUnknownLength(t *testing.T) {
	srv, _ := negotiatingUpstream(t, true)
	up := &counting{srv: srv}
	img := randomImage(t, 1024, 1)
	up.push(t, "org/app", "v1", img)
	layers, _ := img.Layers()
	dgst := mustDigest(t, layers[0])
	docker := newUpstream(t)
	n := startNode(t, testConfig(t, t.TempDir(), docker.host(), up.host()))
	status, raw := rawHead(t, n.addr(), "/v2/ghcr.io/org/app/blobs/"+dgst)
	t.Logf("status %d\n%s", status, raw)
	if strings.Contains(raw, "Content-Length: -1") {
		t.Errorf("HEAD answered Content-Length: -1")
	}
}

func rawHead(t *testing.T, addr, path string) (int, string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	b, _ := io.ReadAll(conn)
	var st int
	fmt.Sscanf(string(b), "HTTP/1.1 %d", &st)
	return st, string(b)
}

// A cached layer or config is not a manifest.
func TestOnlyManifestsServedAsManifests(t *testing.T) {
	f := newFixture(t)
	cfgName, _ := f.img.ConfigName()
	resp, _ := get(t, "GET", f.node.url("/v2/library/alpine/blobs/"+cfgName.String()))
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	resp, body := get(t, "GET", f.node.url("/v2/library/alpine/manifests/"+cfgName.String()))
	t.Logf("status %d Content-Type %q body %.60s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if resp.StatusCode == 200 {
		t.Errorf("a config blob was served as a manifest")
	}
	// and a manifest first fetched through /blobs/ keeps an empty media type
	mdg := mustDigest(t, f.img)
	get(t, "GET", f.node.url("/v2/library/alpine/blobs/"+mdg))
	resp, _ = get(t, "HEAD", f.node.url("/v2/library/alpine/manifests/"+mdg))
	if ct := resp.Header.Get("Content-Type"); ct == "" || ct == "application/octet-stream" {
		t.Errorf("manifest HEAD after a /blobs/ fetch: Content-Type %q", ct)
	}
}
