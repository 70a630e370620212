package cache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// fuzzRepo is where FuzzPutManifest pushes; fuzzHeld are the blobs it
// holds, fuzzHeldManifest a manifest it holds (an index's child).
var (
	fuzzRepo  = route.Repo{Namespace: "registry.internal", Name: "team/app", Sent: "registry.internal/team/app"}
	fuzzHeld  = [][]byte{[]byte(`{"architecture":"amd64","os":"linux"}`), []byte("a layer held by team/app")}
	fuzzChild = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` +
		fuzzDigest(fuzzHeld[0]) + `"},"layers":[]}`)
)

func fuzzDigest(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

// fuzzCache is a cache with the hosted namespace registry.internal whose
// team/app holds fuzzHeld and fuzzChild, pushed through the cache's own
// upload and manifest API.
func fuzzCache(f *testing.F) *cache.Cache {
	f.Helper()
	store, err := storage.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	ns := cache.Namespace{Name: "registry.internal", TagTTL: time.Minute, FillIdleTimeout: time.Minute}
	c, err := cache.New(store, []cache.Namespace{ns})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for _, b := range fuzzHeld {
		id, err := c.StartUpload(ctx, fuzzRepo, "")
		if err == nil {
			_, err = c.AppendUpload(ctx, fuzzRepo, id, 0, int64(len(b)), bytes.NewReader(b))
		}
		if err == nil {
			_, err = c.CommitUpload(ctx, fuzzRepo, id, fuzzDigest(b))
		}
		if err != nil {
			f.Fatal(err)
		}
	}
	child := oci.Manifest{Descriptor: oci.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: fuzzDigest(fuzzChild), Size: int64(len(fuzzChild))}, Body: fuzzChild}
	if err := c.PutManifest(ctx, fuzzRepo, "", child, false); err != nil {
		f.Fatal(err)
	}
	return c
}

// FuzzPutManifest pushes any body as a manifest of team/app, by digest or
// with a tag, with or without leave for an index's children to be absent.
// In the body, @c, @l and @m stand for the held config, layer and child
// manifest, @x for a digest nobody pushed (so that the fuzzer reaches
// manifests that name real content). No panic; a refusal carries an OCI
// error code (never a 500); an accepted manifest reads back byte for byte,
// by digest and by its tag, and team/app serves every config, layer and
// (unless they may be absent) child it names.
func FuzzPutManifest(f *testing.F) {
	img := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"%s"},"layers":[{"digest":"%s"}]}`
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"%s"},{"digest":"%s"}]}`
	f.Add([]byte(fmt.Sprintf(img, "@c", "@l")), "application/vnd.oci.image.manifest.v1+json", true, false)
	f.Add([]byte(fmt.Sprintf(img, "@c", "@x")), "application/vnd.oci.image.manifest.v1+json", true, true)
	f.Add([]byte(fmt.Sprintf(idx, "@m", "@x")), "application/vnd.oci.image.index.v1+json", true, true)
	f.Add([]byte(fmt.Sprintf(idx, "@m", "@x")), "application/vnd.oci.image.index.v1+json", false, false)
	f.Add([]byte(fmt.Sprintf(idx, "@m", "sha256:short")), "application/vnd.oci.image.index.v1+json", false, true)
	f.Add([]byte(`{"config":null,"layers":null,"manifests":[]}`), "application/json", false, false)
	f.Add([]byte(`{"layers":[{"digest":"@x"}],"Layers":[]}`), "application/vnd.oci.image.manifest.v1+json", true, false)
	f.Add([]byte(`null`), "x", false, false)
	f.Add([]byte(`{"layers":{}}`), "x", false, false)
	tokens := strings.NewReplacer("@c", fuzzDigest(fuzzHeld[0]), "@l", fuzzDigest(fuzzHeld[1]), "@m", fuzzDigest(fuzzChild),
		"@x", fuzzDigest([]byte("never pushed")))
	c := fuzzCache(f)
	f.Fuzz(func(t *testing.T, body []byte, mediaType string, tagged, absentChildren bool) {
		body = []byte(tokens.Replace(string(body)))
		if mediaType == "" {
			mediaType = "application/vnd.oci.image.manifest.v1+json" // the registry never sends ""
		}
		ctx := t.Context()
		m := oci.Manifest{Descriptor: oci.Descriptor{MediaType: mediaType, Digest: fuzzDigest(body), Size: int64(len(body))}, Body: body}
		tag := ""
		if tagged {
			tag = "fuzzed"
		}
		err := c.PutManifest(ctx, fuzzRepo, tag, m, absentChildren)
		if err != nil {
			if code, ok := ocierr.CodeOf(err); !ok || (code != ocierr.ManifestInvalid && code != ocierr.ManifestBlobUnknown) {
				t.Fatalf("refused with %v (code %q): want MANIFEST_INVALID or MANIFEST_BLOB_UNKNOWN", err, code)
			}
			return
		}
		got, err := c.Manifest(ctx, fuzzRepo, m.Digest, nil)
		if err != nil || !bytes.Equal(got.Body, body) || got.Digest != m.Digest {
			t.Fatalf("accepted manifest %s read back as %s, %d bytes, %v; want its %d bytes", m.Digest, got.Digest, len(got.Body), err, len(body))
		}
		if tagged {
			if got, err := c.Manifest(ctx, fuzzRepo, tag, nil); err != nil || got.Digest != m.Digest {
				t.Errorf("tag %s points at %s (%v), want %s", tag, got.Digest, err, m.Digest)
			}
		}
		checkNamedHeld(t, c, body, absentChildren)
	})
}

// checkNamedHeld: team/app serves every blob the accepted manifest names,
// and every child unless they may be absent.
func checkNamedHeld(t *testing.T, c *cache.Cache, body []byte, absentChildren bool) {
	t.Helper()
	type desc struct{ Digest string }
	var named struct {
		Config    *desc
		Layers    []desc
		Manifests []desc
	}
	if err := json.Unmarshal(body, &named); err != nil {
		t.Fatalf("accepted a manifest that is not JSON: %v", err)
	}
	blobs := named.Layers
	if named.Config != nil {
		blobs = append(blobs, *named.Config)
	}
	for _, d := range blobs {
		if _, err := c.StatBlob(t.Context(), fuzzRepo, d.Digest); err != nil {
			t.Errorf("accepted, but it names blob %q, which team/app does not serve: %v", d.Digest, err)
		}
	}
	for _, d := range named.Manifests {
		_, err := c.Manifest(t.Context(), fuzzRepo, d.Digest, nil)
		switch {
		case err != nil && !absentChildren:
			t.Errorf("accepted, but it names child %q, which team/app does not serve: %v", d.Digest, err)
		case err != nil && !errors.Is(err, ocierr.ManifestUnknown) && route.ValidDigest(d.Digest) == nil:
			t.Errorf("absent child %q: %v, want MANIFEST_UNKNOWN", d.Digest, err)
		}
	}
}
