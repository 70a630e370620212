package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// StatBlob describes a blob: from local metadata, else from an upstream HEAD.
func (c *Cache) StatBlob(ctx context.Context, repo route.Repo, dgst string) (oci.Descriptor, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return oci.Descriptor{}, err
	}
	info, err := c.store.Stat(dgst)
	if err == nil {
		if err := c.authorize(ctx, ns, repo, dgst, false); err != nil {
			return oci.Descriptor{}, err
		}
		return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: info.Size}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return oci.Descriptor{}, err
	}
	if ns.Origin == nil {
		return oci.Descriptor{}, fmt.Errorf("blob %s in %s: %w", dgst, repo.Canonical(), ocierr.BlobUnknown)
	}
	if size, ok := c.fillSize(dgst, repo); ok { // only a fill for this repository
		return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: size}, nil
	}
	d, err := fromOrigins(ctx, c, ns, dgst, ns.HeadTimeout, func(ctx context.Context, o Origin) (oci.Descriptor, error) {
		return o.HeadBlob(ctx, repo.Name, dgst)
	})
	if err != nil {
		return oci.Descriptor{}, err
	}
	return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: d.Size}, nil
}

// OpenBlob opens a blob for reading: the committed file on a hit, else a
// fill from the digest's origins (owners, then the upstream) that streams to the caller while it is written and
// verified.
func (c *Cache) OpenBlob(ctx context.Context, repo route.Repo, dgst string) (oci.Blob, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return nil, err
	}
	b, err := c.openCommitted(dgst)
	if err == nil {
		if err := c.authorize(ctx, ns, repo, dgst, false); err != nil {
			b.Close()
			return nil, err
		}
		c.count("blob", "hit")
		return b, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if ns.Origin == nil {
		return nil, fmt.Errorf("blob %s in %s: %w", dgst, repo.Canonical(), ocierr.BlobUnknown)
	}
	c.count("blob", "miss")
	src := c.newOriginSource(ns, repo.Name, dgst)
	f, joined := c.startFill(ns, src, repo, dgst)
	if joined && f.repo != repo && (ns.Private || c.private(f.repo.Namespace)) {
		// Someone else's fill, and credentials on one side: this repository
		// must be entitled to the digest before it reads along.
		if err := c.authorize(ctx, ns, repo, dgst, false); err != nil {
			return nil, err
		}
	}
	return c.follow(ctx, f, repo)
}

// authorize enforces tenancy (ARCHITECTURE.md rule 6). In a credentialed
// namespace repo is served dgst only once linked: the upstream served it
// for repo, or confirms it now with one HEAD (coalesced). Namespaces
// without credentials share content, but only content that came through,
// or was confirmed for, such a namespace (BlobInfo.Shared): what was
// fetched with credentials never leaks to them. A hosted namespace serves
// only what is linked to the repository (pushed, mounted, replicated): a
// repository is a registry's own content there, and a deleted link must
// stop serving it. With the upstream down, an unconfirmed pair gets
// UNAVAILABLE.
func (c *Cache) authorize(ctx context.Context, ns *Namespace, repo route.Repo, dgst string, manifest bool) error {
	if !ns.Private && ns.Origin != nil {
		if info, err := c.store.Stat(dgst); err == nil && info.Shared {
			return nil
		}
	}
	linked, err := c.store.Linked(repo.Namespace, repo.Name, dgst)
	if err != nil || linked {
		return err
	}
	if ns.Origin == nil {
		return unknown(dgst, repo, manifest)
	}
	key := fmt.Sprintf("confirm\x00%s\x00%s\x00%v", repo.Canonical(), dgst, manifest)
	_, err = shared(ctx, c, key, func(ctx context.Context) (oci.Descriptor, error) {
		return fromOrigins(ctx, c, ns, dgst, ns.HeadTimeout, func(ctx context.Context, o Origin) (oci.Descriptor, error) {
			if manifest {
				return o.HeadManifest(ctx, repo.Name, dgst)
			}
			return o.HeadBlob(ctx, repo.Name, dgst)
		})
	})
	if err != nil {
		return fmt.Errorf("confirming %s for %s with the upstream: %w", dgst, repo.Canonical(), err)
	}
	c.count("link", "confirmed")
	c.markShared(ns, dgst)
	return c.store.Link(repo.Namespace, repo.Name, dgst, storage.LinkConfirmed)
}

func unknown(dgst string, repo route.Repo, manifest bool) error {
	code := ocierr.BlobUnknown
	if manifest {
		code = ocierr.ManifestUnknown
	}
	return fmt.Errorf("%s in %s: %w", dgst, repo.Canonical(), code)
}

// markShared records content that came through a namespace without
// credentials (a no-op for credentialed ones, and for what is not stored).
func (c *Cache) markShared(ns *Namespace, dgst string) {
	if ns.Private {
		return
	}
	if err := c.store.MarkShared(dgst); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("marking a blob shared", "digest", dgst, "err", err)
	}
}

// fillSize is the size of a blob being filled for repo, when its source has
// said (a fill for another repository tells nothing: tenancy).
func (c *Cache) fillSize(dgst string, repo route.Repo) (int64, bool) {
	c.mu.Lock()
	f, ok := c.inflight[dgst]
	c.mu.Unlock()
	if !ok || f.repo != repo {
		return 0, false
	}
	st := f.state()
	return st.size, st.opened && st.size >= 0
}

// fileBlob serves a committed, verified file.
type fileBlob struct {
	f      *os.File
	size   int64
	c      *Cache // for its buffers and the in-use mark, released on Close
	digest string
	served interface{ Add(float64) }
	once   sync.Once
}

func (b *fileBlob) Size() int64 { return b.size }

func (b *fileBlob) WriteRange(_ context.Context, w io.Writer, off, n int64) (int64, error) {
	written, err := b.c.bufs.copyRange(w, b.f, off, n)
	b.served.Add(float64(written))
	b.c.stats.served.Add(written)
	return written, err
}

func (b *fileBlob) Close() error {
	b.once.Do(func() { b.c.release(b.digest) })
	return b.f.Close()
}
