package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// Manifest resolves ref (a tag or a digest) in repo. accept is the client's
// list of manifest media types (empty: any); it never changes what is
// asked of an origin or stored, only which manifest a tag answers with
// (see negotiate). A digest always answers its own manifest. Errors wrap
// ocierr codes.
func (c *Cache) Manifest(ctx context.Context, repo route.Repo, ref string, accept []string) (oci.Manifest, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return oci.Manifest{}, err
	}
	if route.IsDigest(ref) {
		return c.manifestByDigest(ctx, ns, repo, ref)
	}
	m, err := c.manifestByTag(ctx, ns, repo, ref)
	if err != nil {
		return m, err
	}
	return c.negotiate(ctx, ns, repo, m, accept)
}

// negotiate picks what a tag answers a client with, from the one manifest
// stored for it. A client that accepts its type (or anything) gets it. A
// client that takes no index type, asking for a tag that names an index,
// gets the index's child for the default platform, as distribution
// answers such clients: chosen from the stored index, fetched by digest
// only if not held. Any other mismatch gets the stored manifest with its
// true media type: the client decides what to do with it.
func (c *Cache) negotiate(ctx context.Context, ns *Namespace, repo route.Repo, m oci.Manifest, accept []string) (oci.Manifest, error) {
	if oci.Acceptable(m.MediaType, accept) || !oci.IsIndex(m.MediaType) || oci.TakesIndex(accept) {
		return m, nil
	}
	child, ok := childFor(m.Body, c.defaultPlatform)
	if !ok {
		return m, nil
	}
	c.count("manifest", "platform_child")
	return c.manifestByDigest(ctx, ns, repo, child)
}

func (c *Cache) manifestByDigest(ctx context.Context, ns *Namespace, repo route.Repo, dgst string) (oci.Manifest, error) {
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
	if ns.Origin == nil {
		return oci.Manifest{}, fmt.Errorf("manifest %s in %s: %w", dgst, repo.Canonical(), ocierr.ManifestUnknown)
	}
	c.count("manifest", "miss")
	key := "manifest\x00" + repo.Canonical() + "\x00" + dgst
	return shared(ctx, c, key, func(ctx context.Context) (oci.Manifest, error) {
		return c.fetchManifest(ctx, ns, repo, dgst, dgst)
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

// fetchManifest GETs ref from the origins of key (the digest, or the tag's
// key) and commits the manifest (its digest verified by the origin) before
// returning it.
func (c *Cache) fetchManifest(ctx context.Context, ns *Namespace, repo route.Repo, ref, key string) (oci.Manifest, error) {
	m, err := fromOrigins(ctx, c, ns, key, ns.RequestTimeout, func(ctx context.Context, o Origin) (oci.Manifest, error) {
		m, err := o.Manifest(ctx, repo.Name, ref)
		if err != nil {
			return oci.Manifest{}, err
		}
		return *m, nil
	})
	if err != nil {
		return oci.Manifest{}, err
	}
	if _, err := c.store.PutManifest(m.Digest, m.MediaType, m.Body, storage.ManifestWrite{Namespace: repo.Namespace, Repo: repo.Name, Cause: storage.CauseFill}); err != nil {
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
