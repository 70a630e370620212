package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// Manifest resolves ref (a tag or a digest) in repo. accept is the client's
// list of manifest media types (empty: any). Errors wrap ocierr codes.
func (c *Cache) Manifest(ctx context.Context, repo route.Repo, ref string, accept []string) (oci.Manifest, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return oci.Manifest{}, err
	}
	if route.IsDigest(ref) {
		return c.manifestByDigest(ctx, ns, repo, ref, accept)
	}
	return c.manifestByTag(ctx, ns, repo, ref, accept)
}

func (c *Cache) manifestByDigest(ctx context.Context, ns *Namespace, repo route.Repo, dgst string, accept []string) (oci.Manifest, error) {
	m, err := c.localManifest(dgst)
	if err == nil {
		if err := c.authorize(ctx, ns, repo, dgst, true); err != nil {
			return oci.Manifest{}, err
		}
		c.count("manifest", "hit")
		return m, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return oci.Manifest{}, err
	}
	if ns.Upstream == nil {
		return oci.Manifest{}, fmt.Errorf("manifest %s in %s: %w", dgst, repo.Canonical(), ocierr.ManifestUnknown)
	}
	c.count("manifest", "miss")
	key := "manifest\x00" + repo.Canonical() + "\x00" + dgst
	return shared(ctx, c, key, func(ctx context.Context) (oci.Manifest, error) {
		return c.fetchManifest(ctx, ns, repo, dgst, accept)
	})
}

// localManifest reads a committed manifest, from memory when it is small
// and recently used.
func (c *Cache) localManifest(dgst string) (oci.Manifest, error) {
	if m, ok := c.manifests.Get(dgst); ok {
		c.store.Touch(dgst)
		return m, nil
	}
	info, err := c.store.Stat(dgst)
	if err != nil {
		return oci.Manifest{}, err
	}
	if info.Kind != storage.KindManifest || info.MediaType == "" {
		// A layer or config, or a manifest that arrived through /blobs/:
		// not servable as a manifest until fetched as one.
		return oci.Manifest{}, fmt.Errorf("%s is held, but not as a manifest: %w", dgst, storage.ErrNotFound)
	}
	body, info, err := c.store.ReadManifest(dgst)
	if err != nil {
		return oci.Manifest{}, err
	}
	c.store.Touch(dgst)
	m := oci.Manifest{Descriptor: oci.Descriptor{MediaType: info.MediaType, Digest: dgst, Size: int64(len(body))}, Body: body}
	c.remember(m)
	return m, nil
}

func (c *Cache) remember(m oci.Manifest) {
	if len(m.Body) <= maxLRUManifest {
		c.manifests.Add(m.Digest, m)
	}
}

// fetchManifest GETs ref from the upstream and commits the manifest (its
// digest verified by the upstream client) before returning it.
func (c *Cache) fetchManifest(ctx context.Context, ns *Namespace, repo route.Repo, ref string, accept []string) (oci.Manifest, error) {
	if len(accept) == 0 {
		accept = oci.DefaultAccept()
	}
	var um *upstream.Manifest
	err := c.guard(ctx, ns, ns.RequestTimeout, func(ctx context.Context) (err error) {
		um, err = ns.Upstream.Manifest(ctx, repo.Name, ref, accept)
		return err
	})
	if err != nil {
		return oci.Manifest{}, err
	}
	m := *um
	if _, err := c.store.PutManifest(m.Digest, m.MediaType, m.Body); err != nil {
		return oci.Manifest{}, fmt.Errorf("commit manifest %s: %w", m.Digest, err)
	}
	c.inheritPins(m.Digest)
	c.markShared(ns, m.Digest)
	c.committed()
	if err := c.store.Link(repo.Namespace, repo.Name, m.Digest, storage.LinkServed); err != nil {
		return oci.Manifest{}, err
	}
	c.remember(m)
	return m, nil
}
