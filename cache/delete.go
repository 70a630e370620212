package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// Deletes: the OCI content management API. The registry has checked that
// deletes of this kind are enabled in the namespace and that the client
// may delete there. A repository stops holding a digest when its link
// goes; the push pin goes when no other repository holds the digest as
// pushed, and the bytes when nothing links or pins them any more. In a
// mirror namespace a later pull fetches the content from the upstream
// again.

// DeleteTag removes tag from repo; MANIFEST_UNKNOWN if repo has no such
// tag. The manifest it pointed at stays, reachable by digest.
func (c *Cache) DeleteTag(_ context.Context, repo route.Repo, tag string) error {
	if _, err := c.namespace(repo.Namespace); err != nil {
		return err
	}
	err := c.store.DeleteTag(repo.Namespace, repo.Name, tag)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("tag %s in %s: %w", tag, repo.Canonical(), ocierr.ManifestUnknown)
	}
	if err != nil {
		return err
	}
	if alg, hex, ok := strings.Cut(tag, "-"); ok && route.ValidDigest(alg+":"+hex) == nil {
		c.dropReferrers(repo, alg+":"+hex) // a referrers tag (<alg>-<hex>)
	}
	return nil
}

// DeleteManifest removes manifest dgst from repo, with repo's tags that
// point at it; MANIFEST_UNKNOWN if repo does not hold it as a manifest.
func (c *Cache) DeleteManifest(_ context.Context, repo route.Repo, dgst string) error {
	if _, err := c.namespace(repo.Namespace); err != nil {
		return err
	}
	info, err := c.store.Stat(dgst)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && info.Kind != storage.KindManifest):
		return unknown(dgst, repo, true)
	case err != nil:
		return err
	}
	return c.unlink(repo, dgst, true)
}

// DeleteBlob removes blob dgst from repo; BLOB_UNKNOWN if repo does not
// hold it. Deleting a manifest through /blobs/ removes repo's tags of it
// too: a tag never outlives what it points at.
func (c *Cache) DeleteBlob(_ context.Context, repo route.Repo, dgst string) error {
	if _, err := c.namespace(repo.Namespace); err != nil {
		return err
	}
	return c.unlink(repo, dgst, false)
}

// unlink drops repo's hold on dgst, then what no longer needs keeping.
func (c *Cache) unlink(repo route.Repo, dgst string, manifest bool) error {
	un, err := c.store.Unlink(repo.Namespace, repo.Name, dgst)
	if errors.Is(err, storage.ErrNotFound) {
		return unknown(dgst, repo, manifest)
	}
	if err != nil {
		return err
	}
	c.manifests.Remove(dgst)
	for _, s := range un.Subjects {
		c.dropReferrers(repo, s)
	}
	if !un.PushedElsewhere {
		if err := c.store.Unpin(dgst, storage.PushPinReason); err != nil {
			return err
		}
	}
	removed, err := c.store.RemoveUnreferenced(dgst)
	if err != nil {
		// The repository no longer holds it: the delete happened. The
		// bytes wait for eviction or the next delete.
		c.log.Warn("deleted content kept on disk", "repo", repo.Canonical(), "digest", dgst, "err", err)
	}
	c.log.Info("deleted", "repo", repo.Canonical(), "digest", dgst, "tags", len(un.Tags), "removed", removed)
	return nil
}

// dropReferrers forgets every answer held in memory for subject's
// referrers in repo, whatever its artifactType filter.
func (c *Cache) dropReferrers(repo route.Repo, subject string) {
	for _, k := range c.referrers.lru.Keys() {
		if k.ns == repo.Namespace && k.repo == repo.Name && k.digest == subject {
			c.referrers.lru.Remove(k)
		}
	}
}
