package cache_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// Two namespaces over one store: a credentialed one (Private) and an
// anonymous one, plus a hosted one. A blob and a manifest fetched for a
// private repository are not served, nor their size told, to a repository
// of another namespace that names the digest: those ask their own upstream,
// which has none of it. (They used to be served from the shared store.)
func TestPrivateContentNotServedToOtherNamespaces(t *testing.T) {
	o := newOrigin(t)
	img := image(t)
	o.push(t, "team/secret", "v1", img)
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	priv, _ := upstream.New("ghcr.io", o.srv.URL, upstream.WithRetries(0))
	empty := newOrigin(t) // the anonymous mirror's upstream: a registry with none of it
	anon, _ := upstream.New("docker.io", empty.srv.URL, upstream.WithRetries(0))
	base := cache.Namespace{TagTTL: time.Minute, FillIdleTimeout: time.Minute, HeadTimeout: time.Second, RequestTimeout: time.Second}
	p, a, h := base, base, base
	p.Name, p.Origin, p.Private = "ghcr.io", priv, true
	a.Name, a.Origin = "docker.io", anon
	h.Name = "hosted.local"
	c, err := cache.New(store, []cache.Namespace{p, a, h})
	if err != nil {
		t.Fatal(err)
	}
	secret := route.Repo{Namespace: "ghcr.io", Name: "team/secret", Sent: "team/secret"}
	m, err := c.Manifest(t.Context(), secret, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	b, err := c.OpenBlob(t.Context(), secret, ld.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteRange(t.Context(), io.Discard, 0, b.Size()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := store.Stat(ld.String()); err != nil {
		t.Fatalf("the private layer is not in the store, so nothing below is tested: %v", err)
	}

	for _, r := range []route.Repo{
		{Namespace: "docker.io", Name: "library/anyone", Sent: "anyone"},
		{Namespace: "hosted.local", Name: "anyone", Sent: "anyone"},
	} {
		if b, err := c.OpenBlob(t.Context(), r, ld.String()); !errors.Is(err, ocierr.BlobUnknown) {
			if err == nil {
				b.Close()
			}
			t.Errorf("%s/%s opening the private layer %s: %v, want BLOB_UNKNOWN", r.Namespace, r.Name, ld, err)
		}
		if _, err := c.StatBlob(t.Context(), r, ld.String()); !errors.Is(err, ocierr.BlobUnknown) {
			t.Errorf("%s/%s asking the size of the private layer: %v, want BLOB_UNKNOWN", r.Namespace, r.Name, err)
		}
		if _, err := c.Manifest(t.Context(), r, m.Digest, nil); !errors.Is(err, ocierr.ManifestUnknown) {
			t.Errorf("%s/%s asking the private manifest %s: %v, want MANIFEST_UNKNOWN", r.Namespace, r.Name, m.Digest, err)
		}
	}
}
