package storage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Writer receives the bytes of one blob into a temp file under tmp/,
// hashing them as they arrive. Commit verifies and publishes it; Abort
// throws it away. One goroutine writes; any number may ReadAt concurrently
// (readers following a fill). Always call Commit or Abort; `defer w.Abort()`
// is safe.
type Writer struct {
	s    *Store
	d    parsedDigest
	size int64 // -1 if unknown
	tmp  string

	mu      sync.Mutex // serialises Write, Commit and Abort
	h       hash.Hash
	done    bool // Commit or Abort has run
	written atomic.Int64

	fdMu   sync.RWMutex // ReadAt holds it shared; closing the file holds it exclusively
	f      *os.File
	closed bool
}

// NewWriter starts a blob of the given digest and size (-1 if unknown). The
// digest must be "sha256:<64 lowercase hex>" or "sha512:<128 lowercase hex>",
// else ErrInvalidDigest. Several writers of the same digest may run at once;
// each commits the same bytes.
func (s *Store) NewWriter(digest string, size int64) (*Writer, error) {
	p, err := parseDigest(digest)
	if err != nil {
		return nil, err
	}
	if size < -1 {
		return nil, fmt.Errorf("storage: new writer %s: negative size %d: %w", digest, size, ErrSizeMismatch)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), p.alg+"-"+p.hex[:16]+"-*")
	if err != nil {
		return nil, fmt.Errorf("storage: new writer %s: %w", digest, err)
	}
	return &Writer{s: s, d: p, size: size, tmp: f.Name(), h: p.newHash(), f: f}, nil
}

// Write appends p to the blob and hashes it. Writing more than the announced
// size fails with ErrSizeMismatch; writing after Commit or Abort fails with
// an error wrapping os.ErrClosed.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, w.closedErr()
	}
	if w.size >= 0 && w.written.Load()+int64(len(p)) > w.size {
		return 0, fmt.Errorf("storage: write %s: more than %d bytes: %w", w.d, w.size, ErrSizeMismatch)
	}
	if err := w.s.roomFor(len(p)); err != nil {
		return 0, fmt.Errorf("storage: write %s: %w", w.d, err)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.written.Add(int64(n))
	if err != nil {
		return n, fmt.Errorf("storage: write %s: %w", w.d, err)
	}
	return n, nil
}

// ReadAt reads back bytes written so far, as io.ReaderAt does: reading at or
// past Written returns io.EOF. It works until Commit or Abort closes the temp
// file; afterwards it fails with an error wrapping os.ErrClosed (readers then
// switch to Store.OpenBlob).
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.closed {
		return 0, w.closedErr()
	}
	if off < 0 {
		return 0, fmt.Errorf("storage: read %s: negative offset %d", w.d, off)
	}
	avail := w.written.Load() - off
	if avail <= 0 {
		return 0, io.EOF
	}
	short := int64(len(p)) > avail
	if short {
		p = p[:avail]
	}
	n, err := w.f.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// OpenReader opens the temp file read-only, for one reader following the
// fill. The descriptor stays readable after Commit renames the file and
// after Abort removes it, so the caller must learn the outcome elsewhere and
// read only below Written. It fails with an error wrapping os.ErrClosed once
// Commit or Abort has run.
func (w *Writer) OpenReader() (*os.File, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil, w.closedErr()
	}
	f, err := os.Open(w.tmp)
	if err != nil {
		return nil, fmt.Errorf("storage: open reader %s: %w", w.d, err)
	}
	return f, nil
}

// Written returns the number of bytes written so far.
func (w *Writer) Written() int64 { return w.written.Load() }

// Commit verifies the size (if announced; ErrSizeMismatch) and the digest
// (ErrDigestMismatch); on failure the temp file is removed and nothing is
// committed. Otherwise it fsyncs the file, makes it read-only, renames it
// into blobs/, fsyncs the directory and records the metadata. Committing a
// digest that already exists is fine. After Commit (successful or not) the
// Writer is finished: Abort is a no-op.
func (w *Writer) Commit(kind Kind, mediaType string) (BlobInfo, error) {
	return w.commit(kind, mediaType, nil)
}

// commit is Commit with extra work for the metadata transaction (see
// Store.recordBlob).
func (w *Writer) commit(kind Kind, mediaType string, logged func(*badger.Txn, *txnLog) error) (BlobInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return BlobInfo{}, w.closedErr()
	}
	w.done = true
	if !kind.valid() {
		w.discard()
		return BlobInfo{}, fmt.Errorf("storage: commit %s: unknown kind %q", w.d, kind)
	}
	if err := w.verify(); err != nil {
		w.discard()
		return BlobInfo{}, err
	}
	// The digest lock keeps a removal of the same digest (Evict, Remove,
	// Verify) from running between the rename and the metadata write.
	unlock := w.s.lockDigest(w.d.String())
	defer unlock()
	// A removal of this digest whose last keys are still to go (a drop
	// marker) finishes first: its links must not survive into the new copy.
	if err := w.s.finishPendingDrop(w.d.String()); err != nil {
		w.discard()
		return BlobInfo{}, fmt.Errorf("storage: commit %s: %w", w.d, err)
	}
	if err := w.publish(); err != nil {
		// The rename may have happened (a failed directory sync): a file
		// without metadata, which only the walk after a dirty stop adopts.
		w.s.dirty.Store(true)
		w.discard()
		return BlobInfo{}, fmt.Errorf("storage: commit %s: %w", w.d, err)
	}
	info, err := w.s.recordBlob(w.d.String(), w.written.Load(), kind, mediaType, logged)
	if err != nil {
		w.s.dirty.Store(true) // a published file without metadata: the next Open walks
	}
	return info, err
}

// Verify checks the size and digest of what was written so far, without
// ending the Writer: a fill uses it to release its readers' last bytes
// before Commit's fsync. Commit verifies again.
func (w *Writer) Verify() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return w.closedErr()
	}
	return w.verify()
}

// verify checks the size and digest of what was written.
func (w *Writer) verify() error {
	n := w.written.Load()
	if w.size >= 0 && n != w.size {
		return fmt.Errorf("storage: commit %s: got %d bytes, want %d: %w", w.d, n, w.size, ErrSizeMismatch)
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.d.hex {
		return fmt.Errorf("storage: commit %s: content hashes to %s:%s: %w", w.d, w.d.alg, got, ErrDigestMismatch)
	}
	return nil
}

// publish makes the verified temp file durable, read-only and visible.
func (w *Writer) publish() error {
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := w.f.Chmod(0o444); err != nil {
		return err
	}
	if err := w.closeFile(); err != nil {
		return err
	}
	if err := w.s.makeBlobDirs(w.d); err != nil {
		return err
	}
	dst := w.d.path(w.s.dir)
	if err := os.Rename(w.tmp, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// Abort removes the temp file. It is a no-op after Commit and when called
// again.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	w.done = true
	if err := w.discard(); err != nil {
		return fmt.Errorf("storage: abort %s: %w", w.d, err)
	}
	return nil
}

// discard closes and removes the temp file (already renamed is fine).
func (w *Writer) discard() error {
	cerr := w.closeFile()
	rerr := os.Remove(w.tmp)
	if errors.Is(rerr, fs.ErrNotExist) {
		rerr = nil
	}
	return errors.Join(cerr, rerr)
}

// closeFile closes the temp file once, waiting for ReadAt calls in flight.
func (w *Writer) closeFile() error {
	w.fdMu.Lock()
	defer w.fdMu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

func (w *Writer) closedErr() error {
	return fmt.Errorf("storage: writer %s: %w", w.d, os.ErrClosed)
}
