package main

import (
	"bytes"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A cached config blob is not a manifest: asked for under /manifests/ it
// is MANIFEST_UNKNOWN (404), not served.
func TestConfigBlobNotServedAsManifest(t *testing.T) {
	f := newFixture(t)
	cfgName, _ := f.img.ConfigName()
	if resp, _ := get(t, "GET", f.node.url("/v2/library/alpine/blobs/"+cfgName.String())); resp.StatusCode != 200 {
		t.Fatalf("the config blob: status %d", resp.StatusCode)
	}
	resp, body := get(t, "GET", f.node.url("/v2/library/alpine/manifests/"+cfgName.String()))
	if resp.StatusCode != 404 || !bytes.Contains(body, []byte(`"code":"MANIFEST_UNKNOWN"`)) {
		t.Errorf("the config blob under /manifests/: status %d, %.80q; want 404 MANIFEST_UNKNOWN", resp.StatusCode, body)
	}
}

// A manifest first fetched through /blobs/ (an upstream that serves its
// bytes as a blob too) is served under /manifests/ with its own media
// type, not an empty one or application/octet-stream.
func TestManifestFetchedAsBlobKeepsItsMediaType(t *testing.T) {
	f := newFixture(t)
	mdg := mustDigest(t, f.img)
	want, _ := f.img.MediaType()
	raw, err := f.img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(f.docker.host()+"/library/alpine", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, static.NewLayer(raw, types.OCILayer)); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, "GET", f.node.url("/v2/library/alpine/blobs/"+mdg)); resp.StatusCode != 200 || !bytes.Equal(body, raw) {
		t.Fatalf("the manifest through /blobs/: status %d, right bytes %v", resp.StatusCode, bytes.Equal(body, raw))
	}
	resp, _ := get(t, "HEAD", f.node.url("/v2/library/alpine/manifests/"+mdg))
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != string(want) {
		t.Errorf("manifest HEAD after a /blobs/ fetch: status %d, Content-Type %q; want 200 and %q", resp.StatusCode, ct, want)
	}
}
