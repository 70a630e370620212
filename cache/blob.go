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
	"github.com/cairn-mirror/cairn/upstream"
)

// StatBlob describes a blob: from local metadata, else from an upstream HEAD.
func (c *Cache) StatBlob(ctx context.Context, repo route.Repo, dgst string) (oci.Descriptor, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return oci.Descriptor{}, err
	}
	info, err := c.store.Stat(dgst)
	if err == nil {
		return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: info.Size}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return oci.Descriptor{}, err
	}
	if ns.Upstream == nil {
		return oci.Descriptor{}, fmt.Errorf("blob %s in %s: %w", dgst, repo.Canonical(), ocierr.BlobUnknown)
	}
	if size, ok := c.fillSize(dgst); ok {
		return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: size}, nil
	}
	d, err := ns.Upstream.HeadBlob(ctx, repo.Name, dgst)
	if err != nil {
		return oci.Descriptor{}, err
	}
	return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: d.Size}, nil
}

// OpenBlob opens a blob for reading: the committed file on a hit, else a
// fill from the upstream that streams to the caller while it is written and
// verified.
func (c *Cache) OpenBlob(ctx context.Context, repo route.Repo, dgst string) (oci.Blob, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return nil, err
	}
	b, err := c.openCommitted(dgst)
	if err == nil {
		c.metrics.results.WithLabelValues("blob", "hit").Inc()
		return b, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if ns.Upstream == nil {
		return nil, fmt.Errorf("blob %s in %s: %w", dgst, repo.Canonical(), ocierr.BlobUnknown)
	}
	c.metrics.results.WithLabelValues("blob", "miss").Inc()
	src := upstreamSource{client: ns.Upstream, repo: repo.Name, digest: dgst}
	return c.follow(ctx, c.startFill(ctx, ns, src, dgst), repo)
}

// Source is where a fill reads a blob: the upstream registry now, a peer
// node later. Open returns the body from offset, or from 0 when the source
// ignored the offset (Blob.Offset says which); Size is -1 when unknown.
// Open must honour ctx, and so must reads from the body.
type Source interface {
	Open(ctx context.Context, offset int64) (*upstream.Blob, error)
}

type upstreamSource struct {
	client *upstream.Client
	repo   string
	digest string
}

func (s upstreamSource) Open(ctx context.Context, offset int64) (*upstream.Blob, error) {
	return s.client.OpenBlob(ctx, s.repo, s.digest, offset)
}

// fillSize is the size of a blob being filled, when its source has said.
func (c *Cache) fillSize(dgst string) (int64, bool) {
	c.mu.Lock()
	f, ok := c.inflight[dgst]
	c.mu.Unlock()
	if !ok {
		return 0, false
	}
	st := f.state()
	return st.size, st.opened && st.size >= 0
}

// fileBlob serves a committed, verified file.
type fileBlob struct {
	f      *os.File
	size   int64
	bufs   *sync.Pool
	served interface{ Add(float64) }
}

func (b *fileBlob) Size() int64 { return b.size }

func (b *fileBlob) WriteRange(_ context.Context, w io.Writer, off, n int64) (int64, error) {
	buf := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(buf)
	written, err := io.CopyBuffer(w, io.NewSectionReader(b.f, off, n), *buf)
	b.served.Add(float64(written))
	return written, err
}

func (b *fileBlob) Close() error { return b.f.Close() }
