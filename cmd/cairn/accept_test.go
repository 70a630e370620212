package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// negotiatingUpstream is a registry that, like distribution and Docker Hub,
// answers a tag whose manifest is an index with the first child when the
// client's Accept lacks the index's media type. headNoLength drops
// Content-Length on blob HEADs.
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
// upstream's platform fallback (one child manifest); that answer does not
// repoint the tag: a later client that takes every index type is given the
// index.
func TestNarrowAcceptAnswerDoesNotRepointTag(t *testing.T) {
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
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != 200 || got != *child {
		t.Fatalf("narrow client: status %d, %s; want 200 and the upstream's fallback %s", resp.StatusCode, got, *child)
	}
	full := "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
	resp, _ = get(t, "GET", n.url("/v2/ghcr.io/org/multi/manifests/1.0"), "Accept", full)
	if got := resp.Header.Get("Docker-Content-Digest"); got != idxDigest {
		t.Errorf("full client after a narrow one got %s, want the index %s", got, idxDigest)
	}
}
