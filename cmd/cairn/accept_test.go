package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// negotiating is a registry that, like distribution and Docker Hub,
// answers the tag 1.0, when it names an index, with child when the
// client's Accept lacks the OCI index type. It records the Accept of every
// manifest request, and counts GETs of the tag.
type negotiating struct {
	srv     *httptest.Server
	child   string // what a narrow Accept gets for 1.0
	mu      sync.Mutex
	accepts []string
	tagGETs int
}

// negotiatingUpstream starts one; headNoLength drops Content-Length on
// blob HEADs.
func negotiatingUpstream(t *testing.T, headNoLength bool) *negotiating {
	reg := registry.New(registry.Logger(nopLogger()))
	n := &negotiating{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			n.mu.Lock()
			n.accepts = append(n.accepts, r.Header.Get("Accept"))
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/1.0") {
				n.tagGETs++
			}
			n.mu.Unlock()
		}
		if strings.HasSuffix(r.URL.Path, "/manifests/1.0") && !strings.Contains(r.Header.Get("Accept"), ociIndex) && n.child != "" {
			r.URL.Path = strings.TrimSuffix(r.URL.Path, "1.0") + n.child
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
	t.Cleanup(n.srv.Close)
	return n
}

// platformIndex is an OCI index of a linux/arm64 image, then a
// linux/amd64 one (Docker schema 2 images, as random.Image makes them) (so that the first child is not the default platform's).
func platformIndex(t *testing.T) (v1.ImageIndex, v1.Hash, v1.Hash) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var digests []v1.Hash
	for _, arch := range []string{"arm64", "amd64"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests = append(digests, d)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	return idx, digests[0], digests[1]
}

// Whatever each client accepts, a tag is fetched once, always with the
// complete Accept list (so a negotiating upstream never swaps the index
// for a child), stored once, and answered from that one manifest: the
// index to clients that take it or anything, the index with its true type
// to a client that takes only the Docker list, and the linux/amd64 child
// (chosen by platform, not the first) to a client that takes no index.
func TestTagAnswersEveryAcceptFromOneStoredManifest(t *testing.T) {
	up := negotiatingUpstream(t, false)
	idx, arm, amd := platformIndex(t)
	(&counting{srv: up.srv}).push(t, "org/multi", "1.0", idx)
	up.child = arm.String() // what distribution would give a narrow client
	up.mu.Lock()
	up.accepts, up.tagGETs = nil, 0 // the push's own requests
	up.mu.Unlock()
	idxDigest := mustDigest(t, idx)

	docker := newUpstream(t)
	n := startNode(t, testConfig(t, t.TempDir(), docker.host(), up.srv.Listener.Addr().String()))
	const (
		dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
		dockerV2   = "application/vnd.docker.distribution.manifest.v2+json"
		ociImage   = "application/vnd.oci.image.manifest.v1+json"
	)
	clients := []struct {
		name, accept, digest, mediaType string
	}{
		{"empty", "", idxDigest, ociIndex},
		{"any", "*/*", idxDigest, ociIndex},
		{"full", ociIndex + ", " + dockerList + ", " + dockerV2 + ", " + ociImage, idxDigest, ociIndex},
		{"docker-list-only", dockerList + ", " + dockerV2 + ", " + ociImage, idxDigest, ociIndex},
		{"index-less", dockerV2 + ", " + ociImage, amd.String(), dockerV2},
		{"oci-image-only", ociImage, amd.String(), dockerV2},
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for _, method := range []string{"GET", "HEAD"} {
				var hdr []string
				if c.accept != "" {
					hdr = []string{"Accept", c.accept}
				}
				resp, _ := get(t, method, n.url("/v2/ghcr.io/org/multi/manifests/1.0"), hdr...)
				if got, ct := resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"); resp.StatusCode != 200 || got != c.digest || ct != c.mediaType {
					t.Errorf("%s client, %s: status %d, %s (%s); want 200, %s (%s)", c.name, method, resp.StatusCode, got, ct, c.digest, c.mediaType)
				}
			}
		})
	}
	wg.Wait()
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.tagGETs != 1 {
		t.Errorf("the upstream got %d GETs of the tag, want 1 for every client", up.tagGETs)
	}
	for _, a := range up.accepts {
		for _, mt := range []string{ociIndex, dockerList, dockerV2, ociImage} {
			if !strings.Contains(a, mt) {
				t.Errorf("cairn asked the upstream with Accept %q, which lacks %s", a, mt)
			}
		}
		if strings.Contains(a, "prettyjws") {
			t.Errorf("cairn asked the upstream for Docker schema 1: %q", a)
		}
	}
}
