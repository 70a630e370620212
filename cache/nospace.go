package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/storage"
)

// A full disk during a fill (issue 5): the fill evicts least-recently-used
// blobs and retries the write once. If there is still no room it gives up
// caching: its temp file goes, and every reader of the fill continues on
// its own, from its own offset, with its own request to the source,
// uncached. Those readers still verify the digest before their last byte,
// as followers of a fill do, so a full disk never serves wrong bytes.

// errNoSpace ends a fill that found no room even after evicting; its
// readers read uncached (see uncachedRead).
var errNoSpace = errors.New("no space left on the cache disk, even after evicting")

// isNoSpace: the file system is full, or the user's quota is.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// makeRoom evicts least-recently-used blobs after a write of f found the
// disk full: enough for what the fill still has to write, and at least
// four of its least chunks (which also covers badger eating into the
// reserve), never a blob being filled or read. When less is cached than
// that, evicting cannot make room and nothing is evicted:
// one blob larger than the disk must not empty the cache.
func (c *Cache) makeRoom(f *fill) {
	st := f.state()
	need := int64(4 * fillLeast)
	if st.size > 0 {
		need = max(need, st.size-st.written)
	}
	used, _ := c.store.Usage()
	if need > used {
		c.log.Warn("disk full during a fill, and evicting everything cached would not make room",
			"digest", f.digest, "need_bytes", need, "cached_bytes", used)
		return
	}
	evicted, err := c.evict(used-need, "disk_full")
	var freed int64
	for _, e := range evicted {
		freed += e.Size
	}
	c.log.Warn("disk full during a fill: evicted least recently used blobs to retry",
		"digest", f.digest, "need_bytes", need, "evicted_blobs", len(evicted), "freed_bytes", freed, "err", err)
}

// uncachedRead sends [pos, end) of the blob of a fill that ended with
// errNoSpace, reading it afresh from the fill's source. prefix, when not
// nil, is the fill's removed temp file, still open by this reader, with
// its first written bytes: those up to pos are hashed from it (a reader
// that was following the fill has sent them already), then it is closed
// so that its space goes back to the file system. The rest
// comes from the source with Range from there, all of it hashed; bytes
// before pos are skipped, bytes from end on are read only to finish the
// hash. The window's last byte goes out only once the digest matches.
// It returns the bytes written to w.
func (c *Cache) uncachedRead(ctx context.Context, f *fill, size int64, prefix *os.File, written int64, w io.Writer, pos, end int64) (int64, error) {
	c.metrics.uncached.Inc()
	v, err := storage.NewVerifier(f.digest)
	if err != nil {
		return 0, err
	}
	at := int64(0) // blob offset hashed so far
	if prefix != nil {
		at = min(pos, written)
		_, err := io.Copy(v, io.NewSectionReader(prefix, 0, at))
		prefix.Close() // its space goes back to the file system
		if err != nil {
			return 0, fmt.Errorf("blob %s: rereading the temp file: %w: %w", f.digest, err, ocierr.Unavailable)
		}
	}
	c.log.Warn("disk full: reading a blob uncached from its source", "digest", f.digest, "from", at, "window_start", pos, "window_end", end)

	buf, put := c.bufs.get(0)
	defer put()
	sent := int64(0)
	var last []byte // the window's last byte, held until the digest matches
	// emit hashes the blob bytes p at offset at and sends what falls in
	// [pos, end-1).
	emit := func(p []byte) error {
		v.Write(p)
		from, to := max(at, pos), min(at+int64(len(p)), end-1)
		if from < to {
			k, err := w.Write(p[from-at : to-at])
			sent += int64(k)
			c.servedBytes("uncached", int64(k))
			if err != nil {
				return err
			}
		}
		if end > pos && end-1 >= at && end-1 < at+int64(len(p)) {
			last = []byte{p[end-1-at]}
		}
		at += int64(len(p))
		return nil
	}
	for resumes := 0; at < size; resumes++ {
		err := c.uncachedBody(ctx, f, size, &at, buf, emit)
		if err == nil {
			break
		}
		if resumes == maxResumes || ctx.Err() != nil || isFinal(err) || errors.Is(err, errClient) {
			if !errors.Is(err, errClient) {
				c.log.Warn("uncached read failed", "digest", f.digest, "at", at, "err", err)
			}
			return sent, err
		}
	}
	if err := v.Verify(); err != nil {
		return sent, fmt.Errorf("blob %s read uncached: %w: %w", f.digest, err, ocierr.Unavailable)
	}
	if last != nil {
		k, err := w.Write(last)
		sent += int64(k)
		c.servedBytes("uncached", int64(k))
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// errClient marks a failed write to the client: final for an uncached read.
var errClient = errors.New("writing to the client")

// uncachedBody opens the source at *at and passes what it sends, up to
// size, to emit; a source that ignored the offset has its head skipped.
// A body that ends short is an error (to resume).
func (c *Cache) uncachedBody(ctx context.Context, f *fill, size int64, at *int64, buf []byte, emit func([]byte) error) error {
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := c.idleTimer(f.idle, cancel)
	defer timer.Stop()
	body, err := f.src.Open(bctx, *at)
	if err != nil {
		return err
	}
	defer body.Body.Close()
	switch {
	case body.Offset == *at:
	case body.Offset == 0:
		if err := c.discard(body.Body, *at, timer, f.idle); err != nil {
			return fmt.Errorf("blob %s: skipping to %d: %w: %w", f.digest, *at, err, ocierr.Unavailable)
		}
	default:
		return fmt.Errorf("blob %s: the source resumed at %d, want %d: %w", f.digest, body.Offset, *at, ocierr.Unavailable)
	}
	for *at < size {
		timer.Reset(f.idle)
		k, rerr := body.Body.Read(buf[:min(int64(len(buf)), size-*at)])
		timer.Stop()
		c.fetchedBytes(int64(k))
		if err := emit(buf[:k]); err != nil {
			return fmt.Errorf("%w: %w", errClient, err)
		}
		if rerr != nil && *at < size {
			return fmt.Errorf("blob %s: source body at %d of %d: %w: %w", f.digest, *at, size, rerr, ocierr.Unavailable)
		}
	}
	return nil
}
