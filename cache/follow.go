package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// follow returns a reader of the fill once its size is known: every reader,
// the one that started the fill included, streams from the temp file as it
// grows. A source that does not say the size makes readers wait for the
// verified file instead (there is no Content-Length to promise).
func (c *Cache) follow(ctx context.Context, f *fill, repo route.Repo) (oci.Blob, error) {
	start := time.Now()
	// In use while waiting: the blob must not be evicted between the
	// fill's commit and this reader's open (the returned blob holds its
	// own mark before this one is released).
	c.acquire(f.digest)
	defer c.release(f.digest)
	for {
		st := f.state()
		switch {
		case st.done && errors.Is(st.err, errNoSpace) && st.size > 0:
			// The disk stayed full: this reader fetches the blob itself.
			c.acquire(f.digest)
			return &uncachedBlob{c: c, f: f, size: st.size}, nil
		case st.done && st.err != nil:
			return nil, st.err
		case st.done:
			c.link(repo, f.digest)
			b, err := c.openCommitted(f.digest)
			if errors.Is(err, storage.ErrNotFound) {
				// Evicted between the commit and this reader: a miss.
				return c.OpenBlob(ctx, repo, f.digest)
			}
			return b, err
		case st.opened && st.size > 0 && st.w != nil:
			// (An empty or unsized blob has no last byte to hold back:
			// its readers wait for the verified file.)
			b, err := c.newFollower(f, st, repo, start)
			if !errors.Is(err, os.ErrClosed) {
				return b, err
			}
			// The fill finished between the snapshot and now: st.changed
			// closes when it sets done.
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the fill of %s: %w: %w", f.digest, ctx.Err(), ocierr.Unavailable)
		}
	}
}

// openCommitted opens a committed blob, marked in use (never evicted while
// open) and touched (for least-recently-used eviction) until closed.
func (c *Cache) openCommitted(dgst string) (oci.Blob, error) {
	c.acquire(dgst)
	file, info, err := c.store.OpenBlob(dgst)
	if err != nil {
		c.release(dgst)
		return nil, err
	}
	c.store.Touch(dgst)
	return &fileBlob{f: file, size: info.Size, c: c, digest: dgst, served: c.metrics.bytes.WithLabelValues("cache")}, nil
}

func (c *Cache) newFollower(f *fill, st fillState, repo route.Repo, start time.Time) (oci.Blob, error) {
	c.acquire(f.digest) // in use until closed, also after the fill commits
	file, err := st.w.OpenReader()
	if err != nil {
		c.release(f.digest)
		return nil, err
	}
	return &follower{c: c, f: f, file: file, size: st.size, repo: repo, start: start}, nil
}

// follower streams a fill in progress to one client.
type follower struct {
	c     *Cache
	f     *fill
	file  *os.File // the temp file, readable after its rename or removal
	size  int64
	repo  route.Repo
	start time.Time // when the client asked, for time to first byte
	sent  bool
	once  sync.Once // releases the in-use mark
	gone  bool      // the fill ended with errNoSpace and file is closed
}

func (r *follower) Size() int64 { return r.size }

// followBurst is the most a reader of a fill sends before it lets the
// other readers run. A reader's first burst is shorter, so that a herd's
// last reader has its first bytes after the others' first bursts, not
// after their backlogs.
const (
	followBurst = 1 << 20
	firstBurst  = 64 << 10
)

// WriteRange sends [off, off+n) as the fill writes it. The window's last
// byte waits until the whole blob matches its digest (not for the fsync
// after it): a client never receives a bad blob whole, and a failed fill
// ends its response short. The client leaving (a write error or ctx)
// stops this reader, never the fill.
func (r *follower) WriteRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	if r.gone {
		return r.c.uncachedRead(ctx, r.f, r.size, nil, 0, w, off, off+n)
	}
	end, pos := off+n, off
	for pos < end || n == 0 {
		st := r.f.state()
		// Verified bytes are served from the open temp file whatever the
		// commit does next.
		if !st.verified && errors.Is(st.err, errNoSpace) && n > 0 {
			// The disk stayed full: go on from pos alone, uncached. The
			// temp file is closed as soon as its head is hashed, to give
			// its space back.
			r.gone = true
			k, err := r.c.uncachedRead(ctx, r.f, r.size, r.file, st.written, w, pos, end)
			return pos - off + k, err
		}
		if !st.verified && st.err != nil {
			return pos - off, st.err
		}
		limit := min(st.written, end-1)
		if st.done || st.verified {
			limit = end
			if n == 0 {
				break
			}
		}
		if pos < limit {
			// A burst at a time, then the other readers' turn: with a
			// herd on one fill, the last reader's first byte must not wait
			// behind the first readers' whole backlog.
			burst := int64(followBurst)
			if !r.sent {
				burst = firstBurst
			}
			k, err := r.copy(w, pos, min(limit, pos+burst))
			pos += k
			if err != nil {
				return pos - off, err
			}
			runtime.Gosched()
			continue
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return pos - off, ctx.Err()
		}
	}
	r.c.link(r.repo, r.f.digest)
	return n, nil
}

// settled waits for the fill to end, its commit included, and returns
// why it failed (nil: the blob is stored).
func (r *follower) settled(ctx context.Context) error {
	for {
		st := r.f.state()
		if st.done {
			return st.err
		}
		select {
		case <-st.changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *follower) copy(w io.Writer, from, to int64) (int64, error) {
	k, err := r.c.bufs.copyRange(w, r.file, from, to-from)
	if k > 0 && !r.sent {
		r.sent = true
		r.c.metrics.ttfb.Observe(time.Since(r.start).Seconds())
	}
	r.c.servedBytes("fill", k)
	return k, err
}

func (r *follower) Close() error {
	r.once.Do(func() { r.c.release(r.f.digest) })
	if err := r.file.Close(); err != nil && !r.gone {
		return err
	}
	return nil
}

// uncachedBlob is a reader of a fill that ended with errNoSpace before the
// reader could follow it: it reads the whole blob from the source itself.
type uncachedBlob struct {
	c    *Cache
	f    *fill
	size int64
	once sync.Once
}

func (b *uncachedBlob) Size() int64 { return b.size }

func (b *uncachedBlob) WriteRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	return b.c.uncachedRead(ctx, b.f, b.size, nil, 0, w, off, off+n)
}

func (b *uncachedBlob) Close() error {
	b.once.Do(func() { b.c.release(b.f.digest) })
	return nil
}
