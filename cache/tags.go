package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// sourceUpstream marks tag records learnt from the upstream: the only ones
// revalidated against tag_ttl.
const sourceUpstream = "upstream"

func (c *Cache) manifestByTag(ctx context.Context, ns *Namespace, repo route.Repo, tag string) (oci.Manifest, error) {
	rec, held, err := c.tagRecord(repo, tag)
	if err != nil {
		return oci.Manifest{}, err
	}
	if held && (c.fresh(ns, rec) || c.rateLimited(ns)) {
		if m, err := c.localManifest(rec.Digest); err == nil {
			result := "hit"
			if !c.fresh(ns, rec) {
				result = "ratelimit_skip" // the upstream's budget is nearly spent
			}
			c.count("tag", result)
			return m, nil
		}
	}
	if ns.Origin == nil {
		return oci.Manifest{}, fmt.Errorf("tag %s in %s: %w", tag, repo.Canonical(), ocierr.ManifestUnknown)
	}
	// One flight per tag, whatever each client accepts: the origin is
	// always asked with the one complete Accept list.
	key := "tag\x00" + repo.Canonical() + "\x00" + tag
	m, err := shared(ctx, c, key, func(ctx context.Context) (oci.Manifest, error) {
		// Read the record again: a flight that just ended may have
		// revalidated it after this request first looked.
		rec, held, err := c.tagRecord(repo, tag)
		if err != nil {
			return oci.Manifest{}, err
		}
		if held && c.fresh(ns, rec) {
			if m, err := c.localManifest(rec.Digest); err == nil {
				return m, nil
			}
		}
		return c.refreshTag(ctx, ns, repo, tag, rec, held)
	})
	if err == nil || !held || !c.staleAllowed(ns, err) {
		return m, err
	}
	if m, lerr := c.localManifest(rec.Digest); lerr == nil {
		c.metrics.staleTotal.WithLabelValues(ns.label()).Inc()
		c.count("tag", "stale")
		c.log.Warn("upstream failed, serving last known digest", "repo", repo.Canonical(), "tag", tag, "digest", rec.Digest, "err", err)
		return m, nil
	}
	return m, err
}

// tagRecord reads repo's tag record, and whether there is one (no record
// is not an error).
func (c *Cache) tagRecord(repo route.Repo, tag string) (storage.TagRecord, bool, error) {
	rec, err := c.store.Tag(repo.Namespace, repo.Name, tag)
	if errors.Is(err, storage.ErrNotFound) {
		return rec, false, nil
	}
	return rec, err == nil, err
}

// fresh reports whether a tag record may be served without asking the
// upstream: records not learnt from an upstream are authoritative.
func (c *Cache) fresh(ns *Namespace, rec storage.TagRecord) bool {
	return ns.Origin == nil || rec.Source != sourceUpstream || c.now().Sub(rec.CheckedAt) < ns.TagTTL
}

// staleAllowed: outages, timeouts, 429 and 5xx serve the last known digest;
// 401 and 403 never do; 404 only where the namespace says so.
func (c *Cache) staleAllowed(ns *Namespace, err error) bool {
	if !ns.ServeStale {
		return false
	}
	gone := errors.Is(err, ocierr.ManifestUnknown) || errors.Is(err, ocierr.NameUnknown)
	return errors.Is(err, ocierr.Unavailable) || errors.Is(err, ocierr.TooManyRequests) || (gone && ns.ServeStaleOn404)
}

// refreshTag asks the tag's origins about it: one HEAD when a record is
// held (HEADs are not counted against Docker Hub's pull limit), then the
// manifest by digest only if the tag moved to one not held; a GET by tag
// when nothing is known. What the origin answers is what the tag names for
// every client, since it is always asked with the complete Accept list.
func (c *Cache) refreshTag(ctx context.Context, ns *Namespace, repo route.Repo, tag string, rec storage.TagRecord, held bool) (oci.Manifest, error) {
	ref, tkey := tag, TagKey(repo.Namespace, repo.Name, tag)
	if held {
		desc, err := fromOrigins(ctx, c, ns, tkey, ns.HeadTimeout, func(ctx context.Context, o Origin) (oci.Descriptor, error) {
			return o.HeadManifest(ctx, repo.Name, tag)
		})
		if err != nil {
			return oci.Manifest{}, err
		}
		if desc.Digest == rec.Digest {
			if m, err := c.localManifest(rec.Digest); err == nil {
				c.count("tag", "revalidated")
				return m, c.store.MarkChecked(repo.Namespace, repo.Name, tag, c.now())
			}
		}
		if desc.Digest != "" {
			ref = desc.Digest // the tag moved: fetch what the HEAD named
		}
	}
	c.count("tag", "miss")
	m, err := c.movedTo(ctx, ns, repo, ref, tkey)
	if err != nil {
		return m, err
	}
	_, err = c.store.PutTag(repo.Namespace, repo.Name, tag, storage.TagRecord{
		Digest: m.Digest, MediaType: m.MediaType, Source: sourceUpstream, CheckedAt: c.now(),
	})
	if err == nil {
		c.pinByRules(repo, tag, m.Digest)
	}
	return m, err
}

// movedTo returns the manifest ref names: held already if ref is a digest
// this repository may read, else from the origins of key.
func (c *Cache) movedTo(ctx context.Context, ns *Namespace, repo route.Repo, ref, key string) (oci.Manifest, error) {
	if route.IsDigest(ref) {
		if m, err := c.localManifest(ref); err == nil && c.authorize(ctx, ns, repo, ref, true) == nil {
			return m, nil
		}
		key = ref
	}
	return c.fetchManifest(ctx, ns, repo, ref, key)
}

// Tags lists repo's tags: from the upstream while it answers, else from the
// tag records cairn holds. more reports a further page.
func (c *Cache) Tags(ctx context.Context, repo route.Repo, n int, last string) ([]string, bool, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return nil, false, err
	}
	var upErr error
	if ns.Origin != nil {
		type listing struct {
			tags []string
			more bool
		}
		l, err := fromOrigins(ctx, c, ns, "tags\x00"+repo.Canonical(), ns.RequestTimeout, func(ctx context.Context, o Origin) (listing, error) {
			tags, more, err := o.Tags(ctx, repo.Name, n, last)
			return listing{tags, more}, err
		})
		tags, more := l.tags, l.more
		if err == nil {
			// Registries that ignore n and last (distribution 2.8) or do
			// not sort: the answer is sorted and paged here either way.
			slices.Sort(tags)
			page, trimmed := page(tags, n, last)
			return page, more || trimmed, nil
		}
		if !c.staleAllowed(ns, err) {
			return nil, false, err
		}
		upErr = err
	}
	all, err := c.store.Tags(repo.Namespace, repo.Name)
	if err != nil {
		return nil, false, err
	}
	if len(all) == 0 {
		if upErr != nil {
			return nil, false, upErr
		}
		return nil, false, fmt.Errorf("repository %s: %w", repo.Canonical(), ocierr.NameUnknown)
	}
	tags, more := page(all, n, last)
	return tags, more, nil
}

// page returns up to n sorted tags after last (n <= 0: all of them).
func page(sorted []string, n int, last string) ([]string, bool) {
	if last != "" {
		i, found := slices.BinarySearch(sorted, last)
		if found {
			i++
		}
		sorted = sorted[i:]
	}
	if n > 0 && len(sorted) > n {
		return sorted[:n], true
	}
	return sorted, false
}
