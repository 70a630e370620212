package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// sourceUpstream marks tag records learnt from the upstream: the only ones
// revalidated against tag_ttl.
const sourceUpstream = "upstream"

func (c *Cache) manifestByTag(ctx context.Context, ns *Namespace, repo route.Repo, tag string, accept []string) (oci.Manifest, error) {
	rec, usable, err := c.usableTag(repo, tag, accept)
	if err != nil {
		return oci.Manifest{}, err
	}
	if usable && (c.fresh(ns, rec) || c.rateLimited(ns)) {
		if m, err := c.localManifest(rec.Digest); err == nil {
			result := "hit"
			if !c.fresh(ns, rec) {
				result = "ratelimit_skip" // the upstream's budget is nearly spent
			}
			c.count("tag", result)
			return m, nil
		}
	}
	if ns.Upstream == nil {
		return oci.Manifest{}, fmt.Errorf("tag %s in %s: %w", tag, repo.Canonical(), ocierr.ManifestUnknown)
	}
	key := "tag\x00" + repo.Canonical() + "\x00" + tag + "\x00" + strings.Join(accept, ",")
	m, err := shared(ctx, c, key, func(ctx context.Context) (oci.Manifest, error) {
		// Read the record again: a flight that just ended may have
		// revalidated it after this request first looked.
		rec, usable, err := c.usableTag(repo, tag, accept)
		if err != nil {
			return oci.Manifest{}, err
		}
		if usable && c.fresh(ns, rec) {
			if m, err := c.localManifest(rec.Digest); err == nil {
				return m, nil
			}
		}
		return c.refreshTag(ctx, ns, repo, tag, accept, rec, usable)
	})
	if err == nil || !usable || !c.staleAllowed(ns, err) {
		return m, err
	}
	if m, lerr := c.localManifest(rec.Digest); lerr == nil {
		c.metrics.staleTotal.WithLabelValues(ns.Name).Inc()
		c.count("tag", "stale")
		c.log.Warn("upstream failed, serving last known digest", "repo", repo.Canonical(), "tag", tag, "digest", rec.Digest, "err", err)
		return m, nil
	}
	return m, err
}

// usableTag reads repo's tag record, and whether there is one the client's
// Accept takes (no record is not an error).
func (c *Cache) usableTag(repo route.Repo, tag string, accept []string) (storage.TagRecord, bool, error) {
	rec, err := c.store.Tag(repo.Namespace, repo.Name, tag)
	if errors.Is(err, storage.ErrNotFound) {
		return rec, false, nil
	}
	return rec, err == nil && oci.Acceptable(rec.MediaType, accept), err
}

// fresh reports whether a tag record may be served without asking the
// upstream: records not learnt from an upstream are authoritative.
func (c *Cache) fresh(ns *Namespace, rec storage.TagRecord) bool {
	return ns.Upstream == nil || rec.Source != sourceUpstream || c.now().Sub(rec.CheckedAt) < ns.TagTTL
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

// refreshTag asks the upstream about a tag: one HEAD when a usable record
// exists (HEADs are not counted against Docker Hub's pull limit), then the
// manifest by digest only if the tag moved to one not held; a GET by tag
// when nothing is known.
func (c *Cache) refreshTag(ctx context.Context, ns *Namespace, repo route.Repo, tag string, accept []string, rec storage.TagRecord, usable bool) (oci.Manifest, error) {
	if len(accept) == 0 {
		accept = oci.DefaultAccept()
	}
	ref := tag
	if usable {
		var desc upstream.Descriptor
		err := c.guard(ctx, ns, ns.HeadTimeout, func(ctx context.Context) (err error) {
			desc, err = ns.Upstream.HeadManifest(ctx, repo.Name, tag, accept)
			return err
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
	m, err := c.movedTo(ctx, ns, repo, ref, accept)
	if err != nil || !c.tagNames(ctx, ns, repo, tag, m, accept) {
		// A client that cannot take every kind of index may have been
		// given one platform's manifest in place of the tag's index: it
		// gets its answer, and the tag keeps pointing where full clients
		// are sent.
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

// tagNames reports whether m is what the tag names for every client, so
// that it may be recorded: an index, or any answer to a client that takes
// both index types. For a narrower client, one HEAD with the full Accept
// list tells an image tag from an index the upstream swapped for one
// platform's manifest.
func (c *Cache) tagNames(ctx context.Context, ns *Namespace, repo route.Repo, tag string, m oci.Manifest, accept []string) bool {
	if isIndex(m.MediaType) || takesAnyIndex(accept) {
		return true
	}
	var desc upstream.Descriptor
	err := c.guard(ctx, ns, ns.HeadTimeout, func(ctx context.Context) (err error) {
		desc, err = ns.Upstream.HeadManifest(ctx, repo.Name, tag, oci.DefaultAccept())
		return err
	})
	return err == nil && desc.Digest == m.Digest
}

// movedTo returns the manifest ref names: held already if ref is a digest
// this repository may read, else from the upstream.
func (c *Cache) movedTo(ctx context.Context, ns *Namespace, repo route.Repo, ref string, accept []string) (oci.Manifest, error) {
	if route.IsDigest(ref) {
		if m, err := c.localManifest(ref); err == nil && c.authorize(ctx, ns, repo, ref, true) == nil {
			return m, nil
		}
	}
	return c.fetchManifest(ctx, ns, repo, ref, accept)
}

func isIndex(mediaType string) bool {
	return mediaType == oci.MediaTypeOCIIndex || mediaType == oci.MediaTypeDockerList
}

// takesAnyIndex: the client accepts both index media types, so the upstream
// had no reason to answer with a child manifest instead.
func takesAnyIndex(accept []string) bool {
	return slices.Contains(accept, "*/*") ||
		(slices.Contains(accept, oci.MediaTypeOCIIndex) && slices.Contains(accept, oci.MediaTypeDockerList))
}

// Tags lists repo's tags: from the upstream while it answers, else from the
// tag records cairn holds. more reports a further page.
func (c *Cache) Tags(ctx context.Context, repo route.Repo, n int, last string) ([]string, bool, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return nil, false, err
	}
	var upErr error
	if ns.Upstream != nil {
		var tags []string
		var more bool
		err := c.guard(ctx, ns, ns.RequestTimeout, func(ctx context.Context) (err error) {
			tags, more, err = ns.Upstream.Tags(ctx, repo.Name, n, last)
			return err
		})
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
