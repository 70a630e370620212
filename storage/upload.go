package storage

import (
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Blob upload sessions: the storage half of OCI blob pushes (POST, PATCH,
// PUT and DELETE on /v2/<name>/blobs/uploads/<id>).
//
// A session is a badger record upload/<id> (JSON, uploadRecord) and a file
// tmp/upload-<id>. The record is the truth: it names the session's
// repository, how many bytes it holds (the offset) and the sha256 state of
// those bytes. The file may hold more bytes than the record claims (an
// append that failed, or crashed after writing and before recording): they
// are cut off before the file is used again. It never holds fewer:
//
//   - NewUpload creates and fsyncs the file, and fsyncs tmp/, before it
//     writes the record;
//   - AppendUpload writes at the recorded offset and fsyncs the file before
//     it records the new offset (badger syncs its writes);
//   - CancelUpload and ExpireUploads delete the record before the file;
//   - CommitUpload publishes the file exactly as Writer.Commit does (fsync,
//     read-only, rename into blobs/, fsync the directory), then records the
//     blob, its push link and its push pin and deletes the upload record, in
//     one transaction.
//
// A crash therefore leaves at worst a file without a record (removed by
// Open), a file longer than its record (cut by Open), or, between a
// commit's rename and its metadata, a record whose file has gone (dropped
// by Open, while the unclean-stop walk adopts the blob file; the client got
// no answer and pushes again).
//
// Operations on one session are serialised by a per-session lock, held by
// an append while it reads its body; different sessions run in parallel.
// UploadStatus takes no lock: it reports the last recorded state.

// Upload session errors. Methods wrap them with context; test with errors.Is.
var (
	// ErrUploadUnknown: no upload session has this ID (never created,
	// committed, cancelled, expired or dropped at Open), or the ID is
	// malformed. The spec's BLOB_UPLOAD_UNKNOWN.
	ErrUploadUnknown = errors.New("upload unknown")
	// ErrUploadOffset: an append did not start at the session's offset.
	// HTTP answers 416 with the session's current range.
	ErrUploadOffset = errors.New("upload offset mismatch")
	// ErrTooManyUploads: NewUpload would pass one of its UploadLimits;
	// nothing was created. The spec's TOOMANYREQUESTS.
	ErrTooManyUploads = errors.New("too many open upload sessions")
)

// UploadLimits bounds the open upload sessions NewUpload may create: of
// the node (Sessions) and of one user (PerUser). Zero is no bound.
type UploadLimits struct {
	Sessions, PerUser int
}

// PushPinReason is the reason CommitUpload pins a pushed blob with (see
// Pin): pushed content is never evicted. Unpin it with this reason.
const PushPinReason = "push"

const (
	uploadIDBytes    = 16        // 128 random bits, 32 hex characters
	uploadFilePrefix = "upload-" // tmp/upload-<id>
)

// Upload is the state of a blob upload session.
type Upload struct {
	// ID is 32 lowercase hex characters (128 random bits): safe in a URL
	// and as a file name, and unguessable, so it names a session only to
	// the client that started it.
	ID        string
	Namespace string
	Repo      string
	User      string // who started it ("" for anonymous), for the per-user limit
	Offset    int64  // bytes received and recorded; the next append starts here
	Started   time.Time
	Updated   time.Time // NewUpload or the last successful append
}

// uploadRecord is the JSON value of an upload/<id> key.
type uploadRecord struct {
	Namespace string    `json:"ns"`
	Repo      string    `json:"repo"`
	User      string    `json:"user,omitempty"`
	Offset    int64     `json:"offset"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	// SHA256 is the sha256 state after the first Offset bytes
	// (encoding.BinaryMarshaler), so that appending and committing a
	// sha256 digest read nothing back. Empty: hash the file instead.
	SHA256 []byte `json:"sha256,omitempty"`
}

func (r uploadRecord) upload(id string) Upload {
	return Upload{ID: id, Namespace: r.Namespace, Repo: r.Repo, User: r.User, Offset: r.Offset,
		Started: r.Started, Updated: r.Updated}
}

// NewUpload starts an upload session for repository repo of namespace ns
// (ErrInvalidName if either is empty or contains NUL), started by user
// ("" for anonymous). If the node already holds lim.Sessions open
// sessions, or user lim.PerUser, it fails with ErrTooManyUploads and
// creates nothing. The session is durable: it survives a restart until
// committed, cancelled or expired, and counts against the limits until
// then (the counts are rebuilt from the records at Open). The caller
// checks that ns/repo may be pushed to; storage does not.
func (s *Store) NewUpload(ns, repo, user string, lim UploadLimits) (Upload, error) {
	if err := checkNames(ns, repo); err != nil {
		return Upload{}, err
	}
	if !s.uploadCount.reserve(user, lim) {
		return Upload{}, fmt.Errorf("storage: new upload %s/%s for %q: limits %d in all, %d per user: %w",
			ns, repo, user, lim.Sessions, lim.PerUser, ErrTooManyUploads)
	}
	u, err := s.newUpload(ns, repo, user)
	if err != nil {
		s.uploadCount.release(user)
		return Upload{}, fmt.Errorf("storage: new upload %s/%s: %w", ns, repo, err)
	}
	return u, nil
}

// newUpload creates the file and the record of a session whose place in
// the counts is reserved.
func (s *Store) newUpload(ns, repo, user string) (Upload, error) {
	id, err := newUploadID()
	if err != nil {
		return Upload{}, err
	}
	if err := createUploadFile(s.uploadPath(id)); err != nil {
		return Upload{}, err
	}
	now := s.now().UTC()
	rec := uploadRecord{Namespace: ns, Repo: repo, User: user, Started: now, Updated: now}
	if err := s.putUpload(id, rec); err != nil {
		os.Remove(s.uploadPath(id)) // a record that did land is dropped when its file is found missing
		return Upload{}, err
	}
	return rec.upload(id), nil
}

// UploadSessions returns how many upload sessions are open on the node,
// and how many of them user started.
func (s *Store) UploadSessions(user string) (total, ofUser int) {
	return s.uploadCount.get(user)
}

func newUploadID() (string, error) {
	b := make([]byte, uploadIDBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// createUploadFile creates an empty session file durably.
func createUploadFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// UploadStatus returns the recorded state of session id, or
// ErrUploadUnknown.
func (s *Store) UploadStatus(id string) (Upload, error) {
	if !validUploadID(id) {
		return Upload{}, unknownUpload(id)
	}
	rec, err := s.getUpload(id)
	if err != nil {
		return Upload{}, err
	}
	return rec.upload(id), nil
}

// AppendUpload copies r to the end of session id, which must hold exactly
// offset bytes (else ErrUploadOffset), and returns the new state. The
// bytes count only once r is read to EOF and they are on disk: if reading r
// or writing fails, nothing of this append is kept and the session stays
// usable at its previous offset. On ErrUploadOffset and on such a failure
// the Upload returned is the session's unchanged state. Appends to one
// session are serialised: a second waits for the first, then usually fails
// with ErrUploadOffset. ErrUploadUnknown if there is no such session.
func (s *Store) AppendUpload(id string, offset int64, r io.Reader) (Upload, error) {
	if !validUploadID(id) {
		return Upload{}, unknownUpload(id)
	}
	unlock := s.uploadLocks.lock(id)
	defer unlock()
	rec, f, err := s.openSession(id)
	if err != nil {
		return Upload{}, err
	}
	defer f.Close()
	if offset != rec.Offset {
		return rec.upload(id), fmt.Errorf("storage: append to upload %s at offset %d: it holds %d bytes: %w",
			id, offset, rec.Offset, ErrUploadOffset)
	}
	h, err := sessionHash(rec, f, "sha256")
	if err != nil {
		return rec.upload(id), fmt.Errorf("storage: append to upload %s: %w", id, err)
	}
	n, err := appendFile(reserved{s, io.NewOffsetWriter(f, rec.Offset)}, f, r, h)
	if err != nil {
		f.Truncate(rec.Offset) // best effort: openSession cuts it anyway
		return rec.upload(id), fmt.Errorf("storage: append to upload %s at offset %d: %w", id, offset, err)
	}
	next := rec
	next.Offset += n
	next.Updated = s.now().UTC()
	next.SHA256 = marshalHash(h)
	if err := s.putUpload(id, next); err != nil {
		return Upload{}, fmt.Errorf("storage: append to upload %s: %w", id, err)
	}
	return next.upload(id), nil
}

// appendFile copies r into f at offset at, hashing it into h, and fsyncs f.
func appendFile(w io.Writer, f *os.File, r io.Reader, h hash.Hash) (int64, error) {
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	n, err := io.CopyBuffer(io.MultiWriter(w, h), r, *buf)
	if err != nil {
		return n, err
	}
	return n, f.Sync()
}

// CommitUpload verifies that session id hashes to digest (sha256 or
// sha512; ErrInvalidDigest if malformed) and publishes it as the blob of
// that digest, of the given kind and media type, exactly as Writer.Commit
// does. In the same transaction as the blob record it links the blob to the
// session's repository (LinkPushed), pins it (PushPinReason) and ends the
// session. Manifests are not parsed here: push them with PutManifest.
//
// On ErrDigestMismatch (the spec's DIGEST_INVALID), an unknown kind or an
// invalid digest, the session is kept as it was, so that the client may
// commit with the right digest, append more or cancel. Once publishing has
// begun, the session ends whatever the outcome. ErrUploadUnknown if there
// is no such session.
func (s *Store) CommitUpload(id, digest string, kind Kind, mediaType string) (BlobInfo, error) {
	p, err := parseDigest(digest)
	if err != nil {
		return BlobInfo{}, err
	}
	if !kind.valid() {
		return BlobInfo{}, fmt.Errorf("storage: commit upload %s: unknown kind %q", id, kind)
	}
	if !validUploadID(id) {
		return BlobInfo{}, unknownUpload(id)
	}
	unlock := s.uploadLocks.lock(id)
	defer unlock()
	rec, f, err := s.openSession(id)
	if err != nil {
		return BlobInfo{}, err
	}
	defer f.Close() // a no-op error once the Writer has closed it
	h, err := sessionHash(rec, f, p.alg)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("storage: commit upload %s: %w", id, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.hex {
		return BlobInfo{}, fmt.Errorf("storage: commit upload %s as %s: content hashes to %s:%s: %w",
			id, digest, p.alg, got, ErrDigestMismatch)
	}
	return s.publishUpload(id, rec, p, f, h, kind, mediaType)
}

// publishUpload commits the verified session file f through Writer.commit.
// Its temp file is gone afterwards (renamed or discarded), so the session
// ends on failure too.
func (s *Store) publishUpload(id string, rec uploadRecord, p parsedDigest, f *os.File, h hash.Hash,
	kind Kind, mediaType string) (BlobInfo, error) {
	w := &Writer{s: s, d: p, size: rec.Offset, tmp: f.Name(), h: h, f: f}
	w.written.Store(rec.Offset)
	digest := p.String()
	info, err := w.commit(kind, mediaType, func(txn *badger.Txn, _ *txnLog) error {
		// What Link(ns, repo, digest, LinkPushed) and Pin(digest,
		// PushPinReason) write (pushed is the strongest link), under the
		// digest lock, atomically with the blob record: eviction never
		// sees the blob unpinned.
		now := s.now().UTC()
		if err := setLink(txn, rec.Namespace, rec.Repo, digest, linkRecord{How: LinkPushed, At: now}); err != nil {
			return err
		}
		if err := setJSON(txn, pinKey(digest, PushPinReason), pinRecord{At: now}); err != nil {
			return err
		}
		return txn.Delete(uploadKey(id))
	})
	if err != nil { // err names the digest; the caller knows the session
		dropped, derr := s.dropUpload(id, nil)
		switch {
		case errors.Is(derr, ErrUploadUnknown) && !dropped:
			s.uploadCount.release(rec.User) // the commit's transaction deleted the record
		case derr != nil:
			err = errors.Join(err, derr)
		}
		return BlobInfo{}, err
	}
	s.uploadCount.release(rec.User)
	return info, nil
}

// CancelUpload ends session id, removing its record and file.
// ErrUploadUnknown if there is no such session.
func (s *Store) CancelUpload(id string) error {
	if !validUploadID(id) {
		return unknownUpload(id)
	}
	unlock := s.uploadLocks.lock(id)
	defer unlock()
	if _, err := s.dropUpload(id, nil); err != nil {
		return fmt.Errorf("storage: cancel upload %s: %w", id, err)
	}
	return nil
}

// ExpireUploads ends every session not updated (started or appended to)
// since olderThan, and returns how many it ended. A session with an
// operation in progress is not stale and is skipped. The caller runs it
// periodically with now minus uploads.expire (24h by default).
func (s *Store) ExpireUploads(olderThan time.Time) (int, error) {
	stale := func(rec uploadRecord) bool { return rec.Updated.Before(olderThan) }
	var ids []string
	err := s.forEachUpload(func(id string, rec uploadRecord, err error) error {
		if err == nil && stale(rec) {
			ids = append(ids, id)
		}
		return nil // a malformed record is dropped by the next Open
	})
	if err != nil {
		return 0, fmt.Errorf("storage: expire uploads: %w", err)
	}
	n := 0
	var errs error
	for _, id := range ids {
		unlock, ok := s.uploadLocks.tryLock(id)
		if !ok {
			continue // in use right now
		}
		dropped, err := s.dropUpload(id, stale)
		unlock()
		if dropped {
			n++
		}
		if err != nil && !errors.Is(err, ErrUploadUnknown) {
			errs = errors.Join(errs, err)
		}
	}
	if errs != nil {
		return n, fmt.Errorf("storage: expire uploads: %w", errs)
	}
	return n, nil
}

// openSession reads the record of session id and opens its file, cut to
// the recorded offset. A session whose file is missing, or shorter than
// recorded, is dropped (ErrUploadUnknown): its bytes are lost. The caller
// holds the session lock and closes the file.
func (s *Store) openSession(id string) (uploadRecord, *os.File, error) {
	rec, err := s.getUpload(id)
	if err != nil {
		return rec, nil, err
	}
	f, err := os.OpenFile(s.uploadPath(id), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil, s.dropBroken(id, "file missing")
	}
	if err != nil {
		return rec, nil, fmt.Errorf("storage: upload %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < rec.Offset {
		f.Close()
		return rec, nil, s.dropBroken(id, fmt.Sprintf("file holds %d of %d bytes", fi.Size(), rec.Offset))
	}
	if err == nil && fi.Size() > rec.Offset {
		err = f.Truncate(rec.Offset) // what a failed or crashed append left
	}
	if err != nil {
		f.Close()
		return rec, nil, fmt.Errorf("storage: upload %s: %w", id, err)
	}
	return rec, f, nil
}

// dropBroken ends a session whose file cannot back its record.
func (s *Store) dropBroken(id, why string) error {
	s.log.Warn("dropped a broken upload session", "upload", id, "reason", why)
	err := fmt.Errorf("storage: upload %s: %s, session dropped: %w", id, why, ErrUploadUnknown)
	if _, derr := s.dropUpload(id, nil); derr != nil && !errors.Is(derr, ErrUploadUnknown) {
		err = errors.Join(err, derr)
	}
	return err
}

// dropUpload deletes the record of session id, if cond (nil: always) holds
// for it, then its file, and gives its place in the counts back. It
// reports whether it deleted the record; ErrUploadUnknown if there is
// none. The caller holds the session lock.
func (s *Store) dropUpload(id string, cond func(uploadRecord) bool) (bool, error) {
	dropped := false
	var rec uploadRecord
	err := s.update(func(txn *badger.Txn) error {
		if err := getUploadTxn(txn, id, &rec); err != nil {
			return err
		}
		if dropped = cond == nil || cond(rec); !dropped {
			return nil
		}
		return txn.Delete(uploadKey(id))
	})
	if err != nil || !dropped {
		return false, err
	}
	s.uploadCount.release(rec.User)
	if err := os.Remove(s.uploadPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("upload %s: record deleted, file kept until the next Open: %w", id, err)
	}
	return true, nil
}

// sessionHash returns the hash (alg "sha256" or "sha512") of the first
// rec.Offset bytes of the session file f: the recorded sha256 state when
// there is one, else by reading f.
func sessionHash(rec uploadRecord, f *os.File, alg string) (hash.Hash, error) {
	newHash := parsedDigest{alg: alg}.newHash
	h := newHash()
	if rec.Offset == 0 {
		return h, nil
	}
	if u, ok := h.(encoding.BinaryUnmarshaler); ok && alg == "sha256" && len(rec.SHA256) > 0 {
		if u.UnmarshalBinary(rec.SHA256) == nil {
			return h, nil
		}
		h = newHash()
	}
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, rec.Offset), *buf)
	if err == nil && n != rec.Offset {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("hash upload file: %w", err)
	}
	return h, nil
}

// marshalHash returns h's state, or nil if it cannot be saved.
func marshalHash(h hash.Hash) []byte {
	if m, ok := h.(encoding.BinaryMarshaler); ok {
		if b, err := m.MarshalBinary(); err == nil {
			return b
		}
	}
	return nil
}

func (s *Store) uploadPath(id string) string {
	return filepath.Join(s.dir, tmpDir, uploadFilePrefix+id)
}

func validUploadID(id string) bool { return isLowerHex(id, 2*uploadIDBytes) }

func unknownUpload(id string) error {
	return fmt.Errorf("storage: upload %q: %w", id, ErrUploadUnknown)
}

func (s *Store) putUpload(id string, rec uploadRecord) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, uploadKey(id), rec) })
}

func (s *Store) getUpload(id string) (uploadRecord, error) {
	var rec uploadRecord
	err := s.db.View(func(txn *badger.Txn) error { return getUploadTxn(txn, id, &rec) })
	if err != nil {
		return rec, fmt.Errorf("storage: upload %s: %w", id, err)
	}
	return rec, nil
}

// getUploadTxn reads the record of session id (ErrUploadUnknown).
func getUploadTxn(txn *badger.Txn, id string, rec *uploadRecord) error {
	err := getJSON(txn, uploadKey(id), rec)
	if isNotFound(err) {
		return ErrUploadUnknown
	}
	return err
}
