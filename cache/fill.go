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
)

// errIdle is why a fill's source was cancelled when it sent nothing for
// fill_idle_timeout: an outage, unlike a client leaving.
var errIdle = errors.New("no bytes from the source within fill_idle_timeout")

// errFillCut is why a fill's upstream request was cancelled when it ran
// for fill_max_duration: the fill resumes with Range from where it is.
var errFillCut = errors.New("the upstream request ran for fill_max_duration")

// errTemp marks a failure to write the temp file (a full disk, say): final
// for the fill, since reopening the source cannot mend it.
var errTemp = errors.New("writing the temp file")

const (
	// fillChunk is the buffer a fill reads its source into, and a chunk
	// is written and hashed once it holds at least fillLeast bytes: large
	// enough that per-write costs (a write(2), waking the readers) vanish
	// next to hashing; 1 MiB chunks of at least 256 KiB filled about 1.2x
	// faster than whatever each 256 KiB read returned. A slow source
	// delays its readers by at most fillLeast bytes.
	fillChunk = 1 << 20
	fillLeast = 256 << 10
	// releaseBeforeSync is the blob size from which readers get their
	// last byte once the digest matches, before the commit's fsync.
	releaseBeforeSync = 4 << 20
	// maxResumes bounds how often a fill reopens a dropped or stalled
	// source body with Range before it gives up. A request cut by
	// fill_max_duration after it wrote something is not counted: a fill
	// that keeps making progress completes (see pump).
	maxResumes = 3
)

// fill is one blob on its way from its origins into the store. At most one
// exists per digest at a time (Cache.inflight); any number of readers
// follow it. Its state changes under mu, and every change closes wake so
// that waiting readers look again: no polling.
type fill struct {
	digest string
	repo   route.Repo // who started it: linked once the source answers
	start  time.Time
	src    blobSource    // where the bytes come from (also for readers gone uncached)
	idle   time.Duration // the namespace's fill_idle_timeout

	roomTried bool // a full disk was met and eviction tried (the pump's alone)

	mu      sync.Mutex
	w       *storage.Writer // set when the source has answered
	size    int64           // -1 while unknown (and for ever if the source never says)
	opened  bool            // the source answered: size is as known as it will be
	written int64
	// verified: every byte is written and matches the digest; readers may
	// send their last byte while the commit makes the file durable.
	verified bool
	done     bool
	err      error // why it failed; nil with done means committed
	wake     chan struct{}
}

// fillState is a snapshot of a fill for a reader.
type fillState struct {
	w        *storage.Writer
	size     int64
	opened   bool
	written  int64
	verified bool
	done     bool
	err      error
	changed  <-chan struct{}
}

func newFill(repo route.Repo, dgst string, src blobSource, idle time.Duration) *fill {
	return &fill{digest: dgst, repo: repo, start: time.Now(), src: src, idle: idle, size: -1, wake: make(chan struct{})}
}

func (f *fill) state() fillState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fillState{w: f.w, size: f.size, opened: f.opened, written: f.written, verified: f.verified, done: f.done, err: f.err, changed: f.wake}
}

// update changes the state under the lock and wakes every waiting reader.
func (f *fill) update(change func()) {
	f.mu.Lock()
	change()
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// startFill returns the fill in flight for dgst (joined true), or starts
// one for repo reading from src. The fill runs on the cache's own context,
// detached from the request's, so the client that started it may leave;
// each of its upstream requests is bounded by fillBound, and it fails
// after the namespace's FillIdleTimeout without progress. After Close it
// starts nothing: the fill returned has already failed with ErrClosed.
func (c *Cache) startFill(ns *Namespace, src blobSource, repo route.Repo, dgst string) (f *fill, joined bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.inflight[dgst]; ok {
		c.metrics.coalesced.Inc()
		return f, true
	}
	f = newFill(repo, dgst, src, ns.FillIdleTimeout)
	if c.closed {
		f.done, f.err = true, fmt.Errorf("fill %s: %w: %w", dgst, ErrClosed, ocierr.Unavailable)
		return f, false
	}
	c.inflight[dgst] = f
	c.metrics.inflight.Inc()
	c.fills.Add(1)
	go func() {
		defer c.fills.Done()
		c.runFill(c.root, f)
	}()
	return f, false
}

func (c *Cache) runFill(ctx context.Context, f *fill) {
	result, err := c.pump(ctx, f)
	if err == nil {
		result, err = c.commitFill(f)
	} else if st := f.state(); st.w != nil {
		st.w.Abort()
	}
	// Metrics first, so that a reader who sees the end sees it counted
	// (the end: done. A large blob's readers may finish before it, once
	// verified; see commitFill.)
	c.metrics.fills.WithLabelValues(result).Inc()
	if err == nil {
		c.metrics.fillTime.Observe(time.Since(f.start).Seconds())
	} else {
		c.log.Warn("fill failed", "digest", f.digest, "result", result, "err", err)
	}
	c.mu.Lock()
	delete(c.inflight, f.digest) // the next request finds the blob, or starts afresh
	c.metrics.inflight.Dec()
	c.mu.Unlock()
	f.update(func() { f.done, f.err = true, err })
}

func (c *Cache) commitFill(f *fill) (string, error) {
	w := f.state().w
	// The bytes are right before they are durable: readers of a large blob
	// need not wait for its fsync, which takes seconds for a GiB (a crash
	// before it leaves only a temp file). A small blob's readers wait, so
	// that a finished pull is a stored blob.
	if w.Written() >= releaseBeforeSync && w.Verify() == nil {
		f.update(func() { f.verified = true })
	}
	_, err := w.Commit(storage.KindUnknown, "")
	switch {
	case err == nil:
		if ns, err := c.namespace(f.repo.Namespace); err == nil {
			c.markShared(ns, f.digest)
		}
		c.committed()
		return "committed", nil
	case errors.Is(err, storage.ErrDigestMismatch), errors.Is(err, storage.ErrSizeMismatch):
		return "verify_failed", fmt.Errorf("fill %s: %w: %w", f.digest, err, ocierr.Unavailable)
	case isNoSpace(err):
		// Verified, but no room to publish it: its readers finish uncached.
		return "no_space", fmt.Errorf("fill %s: %w: %w: %w", f.digest, errNoSpace, err, ocierr.Unavailable)
	default:
		return "aborted", fmt.Errorf("fill %s: %w: %w", f.digest, err, ocierr.Unavailable)
	}
}

// pump copies the source into the temp file until the body ends,
// reopening the source with Range from where the fill is when a body
// breaks off. The rule: a request cut by fill_max_duration (errFillCut)
// that wrote at least one byte is resumed without limit, since each such
// cut moves the fill forward; every other break (a dropped or stalled
// body, or a cut that wrote nothing) counts, and the fill gives up after
// maxResumes of those. A fill whose first request broke before the source
// answered is not resumed.
func (c *Cache) pump(ctx context.Context, f *fill) (string, error) {
	b0, b1 := fillBufs.Get().(*[]byte), fillBufs.Get().(*[]byte)
	defer fillBufs.Put(b0) // pumpBody has stopped its reader when it returns
	defer fillBufs.Put(b1)
	bufs := [2][]byte{*b0, *b1}
	for resumes := 0; ; {
		from := f.state().written
		err := c.pumpBody(ctx, f, bufs)
		if err == nil {
			return "", nil
		}
		if errors.Is(err, errNoSpace) {
			return "no_space", err
		}
		if errors.Is(err, errTemp) {
			return "aborted", err
		}
		st := f.state()
		progressCut := errors.Is(err, errFillCut) && st.written > from
		if !st.opened || (!progressCut && resumes == maxResumes) || ctx.Err() != nil || isFinal(err) {
			return "upstream_error", err
		}
		if !progressCut {
			resumes++
		}
		c.metrics.resumes.Inc()
		c.log.Info("resuming fill", "digest", f.digest, "offset", st.written, "cut", progressCut, "err", err)
	}
}

// isFinal: errors a retry cannot mend (the source says the blob is gone,
// or refuses us).
func isFinal(err error) bool {
	return errors.Is(err, ocierr.BlobUnknown) || errors.Is(err, ocierr.Unauthorized) ||
		errors.Is(err, ocierr.Denied) || errors.Is(err, storage.ErrSizeMismatch)
}

// pumpBody opens the source at the fill's offset and copies one body. A
// body that ends before the announced size is an error (to resume); so is
// one cut by the fill bound, which then wraps errFillCut. The next read
// from the source runs while the last one is written and hashed: two
// buffers, one goroutine reading, this one writing.
func (c *Cache) pumpBody(ctx context.Context, f *fill, bufs [2][]byte) (err error) {
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if c.fillBound > 0 {
		cut := time.AfterFunc(c.fillBound, func() { cancel(errFillCut) })
		defer cut.Stop()
		defer func() {
			if err != nil && errors.Is(context.Cause(bctx), errFillCut) {
				err = fmt.Errorf("%w: %w", errFillCut, err)
			}
		}()
	}
	timer := c.idleTimer(f.idle, cancel)
	defer timer.Stop()
	body, err := f.src.Open(bctx, f.state().written)
	if err != nil {
		return err
	}
	defer body.Body.Close()
	if err := c.attach(f, body, timer); err != nil {
		return err
	}
	// At most two reads are ever out (one per buffer), so the reader
	// never blocks sending one.
	reads := make(chan pumpRead, len(bufs))
	free := make(chan []byte, len(bufs))
	for _, b := range bufs {
		free <- b
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-bctx.Done():
				return
			}
			k, err := readChunk(body.Body, b, fillLeast, timer, f.idle)
			reads <- pumpRead{b: b[:k], err: err}
			if err != nil {
				return
			}
		}
	}()
	// The reader must be gone before the buffers serve a resumed body.
	defer func() {
		cancel(nil)
		body.Body.Close()
		<-readerDone
	}()
	for {
		var r pumpRead
		select {
		case r = <-reads:
		case <-readerDone:
			select {
			case r = <-reads:
			default:
				return fmt.Errorf("fill %s: source body at %d: %w: %w", f.digest, f.state().written, context.Cause(bctx), ocierr.Unavailable)
			}
		}
		if err := c.append(f, r.b); err != nil {
			return err
		}
		c.fetchedBytes(int64(len(r.b)))
		if errors.Is(r.err, io.EOF) {
			return f.complete()
		}
		if r.err != nil {
			return fmt.Errorf("fill %s: source body at %d: %w: %w", f.digest, f.state().written, r.err, ocierr.Unavailable)
		}
		free <- r.b[:cap(r.b)]
	}
}

// fillBufs holds fills' read buffers (two per fill), kept between fills.
var fillBufs = sync.Pool{New: func() any { b := make([]byte, fillChunk); return &b }}

// readChunk reads body into b until b holds at least least bytes, or the
// body ends or fails. The idle clock runs only while a read waits on the
// source, and starts again with each read.
func readChunk(body io.Reader, b []byte, least int, timer *time.Timer, idle time.Duration) (int, error) {
	n := 0
	for n < least && n < len(b) {
		timer.Reset(idle)
		k, err := body.Read(b[n:])
		timer.Stop()
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// pumpRead is one read from a fill's source: its bytes and its error.
type pumpRead struct {
	b   []byte
	err error
}

// attach makes a newly opened body continue the fill: the first body sets
// the size and creates the temp file; a resumed one must start where the
// fill is, or at 0 (a source that ignored Range), whose head is skipped:
// those bytes are already written, hashed and verified with the rest.
func (c *Cache) attach(f *fill, body *oci.RemoteBlob, timer *time.Timer) error {
	st := f.state()
	if !st.opened {
		w, err := c.store.NewWriter(f.digest, body.Size)
		if isNoSpace(err) {
			f.update(func() { f.size = body.Size })
			f.roomTried = true
			c.makeRoom(f)
			w, err = c.store.NewWriter(f.digest, body.Size)
		}
		if isNoSpace(err) {
			// No temp file at all: readers go uncached from the start.
			f.update(func() { f.opened = true })
			return fmt.Errorf("fill %s: %w: %w: %w", f.digest, errNoSpace, err, ocierr.Unavailable)
		}
		if err != nil {
			return fmt.Errorf("fill %s: %w", f.digest, err)
		}
		f.update(func() { f.w, f.size, f.opened = w, body.Size, true })
		// The source served it for this repository. The link's synced
		// write runs beside the body's first bytes, not before them.
		c.fills.Add(1)
		go func() {
			defer c.fills.Done()
			c.link(f.repo, f.digest)
		}()
		return nil
	}
	switch body.Offset {
	case st.written:
		return nil
	case 0:
		if err := c.discard(body.Body, st.written, timer, f.idle); err != nil {
			return fmt.Errorf("fill %s: skipping to %d: %w: %w", f.digest, st.written, err, ocierr.Unavailable)
		}
		return nil
	}
	return fmt.Errorf("fill %s: resumed at %d, want %d: %w", f.digest, body.Offset, st.written, ocierr.Unavailable)
}

// idleTimer cancels with errIdle once it fires: it stops a source that
// sends nothing. Reset it before each read, stop it after.
func (c *Cache) idleTimer(idle time.Duration, cancel context.CancelCauseFunc) *time.Timer {
	return time.AfterFunc(idle, func() { cancel(errIdle) })
}

// discard reads past the first n bytes of a body from a source that
// ignored Range, under the idle timer: a source that keeps sending is
// making progress.
func (c *Cache) discard(body io.Reader, n int64, timer *time.Timer, idle time.Duration) error {
	buf := make([]byte, 32<<10)
	for left := n; left > 0; {
		timer.Reset(idle)
		k, err := body.Read(buf[:min(int64(len(buf)), left)])
		timer.Stop()
		left -= int64(k)
		c.fetchedBytes(int64(k))
		if left > 0 && err != nil {
			return err
		}
	}
	return nil
}

// append writes to the temp file and wakes the readers. A full disk gets
// one eviction and one retry per fill (see nospace.go).
func (c *Cache) append(f *fill, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	w := f.state().w
	n, err := w.Write(p)
	if isNoSpace(err) && !f.roomTried {
		f.roomTried = true
		c.makeRoom(f)
		_, err = w.Write(p[n:]) // the rest of p: Write took n bytes
	}
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrSizeMismatch):
			return fmt.Errorf("fill %s: %w", f.digest, err) // the source sent too much
		case isNoSpace(err):
			f.update(func() { f.written = w.Written() })
			return fmt.Errorf("fill %s: %w: %w: %w", f.digest, errNoSpace, err, ocierr.Unavailable)
		}
		return fmt.Errorf("fill %s: %w: %w: %w", f.digest, errTemp, err, ocierr.Unavailable)
	}
	f.update(func() { f.written = w.Written() })
	return nil
}

// complete checks a body that ended: short of the size, it is to resume.
func (f *fill) complete() error {
	st := f.state()
	if st.size >= 0 && st.written < st.size {
		return fmt.Errorf("fill %s: source body ended at %d of %d bytes: %w", f.digest, st.written, st.size, ocierr.Unavailable)
	}
	return nil
}

// link records that repo was served dgst, once a fill committed.
func (c *Cache) link(repo route.Repo, dgst string) {
	if err := c.store.Link(repo.Namespace, repo.Name, dgst, storage.LinkServed); err != nil {
		c.log.Warn("recording link", "repo", repo.Canonical(), "digest", dgst, "err", err)
	}
}
