package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// fillChunk is the read size of a fill: large enough that per-read costs
// vanish next to hashing and disk writes.
const fillChunk = 256 << 10

// fill starts fetching dgst from src into a temp file. It is the one place
// blobs enter the cache from elsewhere. The fill runs on a context detached
// from the request's, bounded overall by fillBound and failed after
// FillIdleTimeout without progress, so a client that hangs up does not
// lose the blob for everyone else.
func (c *Cache) fill(ctx context.Context, ns *Namespace, src Source, repo route.Repo, dgst string) (oci.Blob, error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fillBound)
	body, err := src.Open(fctx, 0)
	if err != nil {
		cancel()
		c.metrics.fills.WithLabelValues("upstream_error").Inc()
		return nil, err
	}
	w, err := c.store.NewWriter(dgst, body.Size)
	if err != nil {
		body.Body.Close()
		cancel()
		return nil, fmt.Errorf("fill %s: %w", dgst, err)
	}
	f := &fillBlob{c: c, ns: ns, repo: repo, digest: dgst, body: body, w: w, cancel: cancel, start: time.Now()}
	if body.Size >= 0 {
		return f, nil
	}
	// Without a length there is no Content-Length to promise a client:
	// fill completely, then serve the verified file.
	if _, err := f.WriteRange(ctx, io.Discard, 0, 0); err != nil {
		return nil, err
	}
	return c.OpenBlob(ctx, repo, dgst)
}

// fillBlob streams a blob to one client while writing it to a temp file.
type fillBlob struct {
	c      *Cache
	ns     *Namespace
	repo   route.Repo
	digest string
	body   *upstream.Blob
	w      *storage.Writer
	cancel context.CancelFunc
	start  time.Time
	once   sync.Once
}

func (f *fillBlob) Size() int64 { return f.body.Size }

// WriteRange copies the whole blob into the temp file and the window
// [off, off+n) to dst. The window's last byte is held back until the blob is
// verified and committed: a client never receives a bad blob whole. If dst
// fails (the client left) the fill carries on to the commit.
func (f *fillBlob) WriteRange(_ context.Context, dst io.Writer, off, n int64) (int64, error) {
	defer f.Close()
	// The idle timer runs only while waiting on the upstream: a client that
	// is slow to read must not fail the fill.
	idle := time.AfterFunc(f.ns.FillIdleTimeout, f.cancel)
	defer idle.Stop()
	win := window{dst: dst, off: off, end: off + n}
	buf := make([]byte, fillChunk)
	var pos int64
	for {
		idle.Reset(f.ns.FillIdleTimeout)
		k, rerr := f.body.Body.Read(buf)
		idle.Stop()
		if k > 0 {
			if _, err := f.w.Write(buf[:k]); err != nil {
				return win.written, f.fail("write", err)
			}
			win.pass(pos, buf[:k])
			pos += int64(k)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return win.written, f.fail("upstream_error", fmt.Errorf("fill %s: upstream body: %w: %w", f.digest, rerr, ocierr.Unavailable))
		}
	}
	if err := f.commit(); err != nil {
		return win.written, err
	}
	written, err := win.finish()
	f.c.metrics.bytes.WithLabelValues("upstream").Add(float64(written))
	return written, err
}

func (f *fillBlob) commit() error {
	if _, err := f.w.Commit(storage.KindUnknown, ""); err != nil {
		result := "aborted"
		if errors.Is(err, storage.ErrDigestMismatch) || errors.Is(err, storage.ErrSizeMismatch) {
			result = "verify_failed"
		}
		return f.fail(result, fmt.Errorf("fill %s: %w: %w", f.digest, err, ocierr.Unavailable))
	}
	f.c.metrics.fills.WithLabelValues("committed").Inc()
	f.c.metrics.fillTime.Observe(time.Since(f.start).Seconds())
	f.c.metrics.fetched.Add(float64(f.w.Written()))
	return f.c.store.Link(f.repo.Namespace, f.repo.Name, f.digest, storage.LinkServed)
}

// fail counts a failed fill; the error reaches the access line.
func (f *fillBlob) fail(result string, err error) error {
	f.c.metrics.fills.WithLabelValues(result).Inc()
	return err
}

// Close releases the upstream body and removes the temp file unless it was
// committed.
func (f *fillBlob) Close() error {
	f.once.Do(func() {
		f.body.Body.Close()
		f.w.Abort()
		f.cancel()
	})
	return nil
}

// window passes the client's byte range through, holding its last byte.
type window struct {
	dst      io.Writer
	off, end int64 // the client wants [off, end)
	held     []byte
	written  int64
	err      error // the client's write error; the fill goes on without it
}

// pass offers the chunk at stream position pos.
func (w *window) pass(pos int64, chunk []byte) {
	lo, hi := max(pos, w.off), min(pos+int64(len(chunk)), w.end-1)
	if lo < hi && w.err == nil {
		k, err := w.dst.Write(chunk[lo-pos : hi-pos])
		w.written += int64(k)
		w.err = err
	}
	if last := w.end - 1; last >= pos && last < pos+int64(len(chunk)) {
		w.held = []byte{chunk[last-pos]}
	}
}

// finish delivers the held byte once the blob is verified.
func (w *window) finish() (int64, error) {
	if w.err != nil || w.held == nil {
		return w.written, w.err
	}
	k, err := w.dst.Write(w.held)
	w.written += int64(k)
	return w.written, err
}
