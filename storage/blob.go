package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Kind is what a blob is used as, when known.
type Kind string

// Blob kinds.
const (
	KindLayer    Kind = "layer"
	KindConfig   Kind = "config"
	KindManifest Kind = "manifest"
	KindUnknown  Kind = ""
)

func (k Kind) valid() bool {
	switch k {
	case KindLayer, KindConfig, KindManifest, KindUnknown:
		return true
	}
	return false
}

// BlobInfo is the metadata of a committed blob.
type BlobInfo struct {
	Digest     string
	Size       int64
	Kind       Kind
	MediaType  string
	Created    time.Time // first commit
	LastAccess time.Time // last commit or Touch
	// Shared: the blob arrived through, or was confirmed for, a namespace
	// without credentials, so any such namespace may serve it (see
	// MarkShared). Gone with the blob when it is removed.
	Shared bool
}

// blobRecord is the JSON value of a blob/<digest> key.
type blobRecord struct {
	Size       int64     `json:"size"`
	Kind       Kind      `json:"kind"`
	MediaType  string    `json:"media_type"`
	Created    time.Time `json:"created"`
	LastAccess time.Time `json:"last_access"`
	Shared     bool      `json:"shared,omitempty"`
}

// withAccess applies an atime/ value: the later access wins.
func (r *blobRecord) withAccess(v []byte) {
	if len(v) != 8 {
		return
	}
	if at := time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(); at.After(r.LastAccess) {
		r.LastAccess = at
	}
}

// readRecord reads d's blob/ record with its access time (ErrNotFound).
func readRecord(txn *badger.Txn, d string) (blobRecord, error) {
	var rec blobRecord
	if err := getRecord(txn, d, &rec); err != nil {
		return rec, err
	}
	item, err := txn.Get(accessKey(d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	return rec, item.Value(func(b []byte) error { rec.withAccess(b); return nil })
}

func (r blobRecord) info(digest string) BlobInfo {
	return BlobInfo{Digest: digest, Size: r.Size, Kind: r.Kind, MediaType: r.MediaType,
		Created: r.Created, LastAccess: r.LastAccess, Shared: r.Shared}
}

// MarkShared records that digest may be served in namespaces without
// credentials. ErrNotFound if the blob is not committed.
func (s *Store) MarkShared(digest string) error {
	if info, ok := s.infos.Get(digest); ok && info.Shared {
		return nil
	}
	var rec blobRecord
	epoch := s.removals.Load()
	err := s.update(func(txn *badger.Txn) error {
		var err error
		if rec, err = readRecord(txn, digest); err != nil {
			return err
		}
		rec.Shared = true
		return setRecord(txn, digest, rec)
	})
	if err != nil {
		return fmt.Errorf("storage: mark shared %s: %w", digest, err)
	}
	s.cacheInfo(s.withPendingAccess(rec.info(digest)), epoch) // unless removed meanwhile
	return nil
}

// Stat returns the metadata of a committed blob: ErrNotFound if it is not
// committed, ErrInvalidDigest if digest is malformed.
func (s *Store) Stat(digest string) (BlobInfo, error) {
	if _, err := parseDigest(digest); err != nil {
		return BlobInfo{}, err
	}
	if info, ok := s.infos.Get(digest); ok {
		return info, nil
	}
	epoch := s.removals.Load()
	var rec blobRecord
	err := s.db.View(func(txn *badger.Txn) (err error) { rec, err = readRecord(txn, digest); return err })
	if err != nil {
		return BlobInfo{}, fmt.Errorf("storage: stat %s: %w", digest, err)
	}
	info := s.withPendingAccess(rec.info(digest))
	s.cacheInfo(info, epoch)
	return info, nil
}

// OpenBlob opens a committed blob for reading; the caller closes the file.
// The file stays readable even if the blob is removed meanwhile. ErrNotFound
// if the blob is not committed or its file has gone.
func (s *Store) OpenBlob(digest string) (*os.File, BlobInfo, error) {
	info, err := s.Stat(digest)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	p, _ := parseDigest(digest) // validated by Stat
	f, err := os.Open(p.path(s.dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, BlobInfo{}, fmt.Errorf("storage: open %s: file missing: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, BlobInfo{}, fmt.Errorf("storage: open %s: %w", digest, err)
	}
	return f, info, nil
}

// recordBlob writes the blob/ metadata of a committed file. Committing again
// keeps Created, refreshes LastAccess and keeps the old kind and media type
// unless new ones are given; a new record adds to Usage. logged, if not
// nil, runs in the same transaction, which may then write the change log
// (see updateLogged). The caller holds the digest lock (or runs in Open).
func (s *Store) recordBlob(digest string, size int64, kind Kind, mediaType string,
	logged func(*badger.Txn, *txnLog) error) (BlobInfo, error) {
	var old, rec blobRecord
	var added bool
	fn := func(txn *badger.Txn, log *txnLog) error {
		old = blobRecord{}
		err := getRecord(txn, digest, &old)
		if added = isNotFound(err); err != nil && !added {
			return err
		}
		rec = mergeBlobRecord(old, size, kind, mediaType, s.now().UTC())
		if err := setRecord(txn, digest, rec); err != nil || logged == nil {
			return err
		}
		return logged(txn, log)
	}
	var err error
	if logged != nil {
		err = s.updateLogged(fn)
	} else {
		err = s.update(func(txn *badger.Txn) error { return fn(txn, nil) })
	}
	if err != nil {
		return BlobInfo{}, fmt.Errorf("storage: record %s: %w", digest, err)
	}
	if added {
		s.addUsage(rec.Size, 1)
	} else {
		s.addUsage(rec.Size-old.Size, 0)
	}
	info := rec.info(digest)
	s.infoMu.Lock() // callers hold the digest lock: no removal races this; infoMu orders it with touchInfo
	s.infos.Add(digest, info)
	s.infoMu.Unlock()
	return info, nil
}

// mergeBlobRecord applies a new commit to the existing record (zero if none).
func mergeBlobRecord(old blobRecord, size int64, kind Kind, mediaType string, now time.Time) blobRecord {
	if old.Created.IsZero() {
		old.Created = now
	}
	old.Size, old.LastAccess = size, now
	if kind != KindUnknown {
		old.Kind = kind
	}
	if mediaType != "" {
		old.MediaType = mediaType
	}
	return old
}

// makeBlobDirs creates blobs/<alg>/<2 hex> as needed, fsyncing the parent of
// each directory it creates.
func (s *Store) makeBlobDirs(p parsedDigest) error {
	parent := filepath.Join(s.dir, blobsDir)
	for _, name := range []string{p.alg, p.hex[:2]} {
		dir := filepath.Join(parent, name)
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			if err := syncDir(parent); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return err
		}
		parent = dir
	}
	return nil
}
