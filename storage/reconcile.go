package storage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Start-up reconciliation of blobs/ with the blob/ records.
//
// A commit renames the file into blobs/ before it writes the record, and a
// removal deletes the record before the file, so a crash can leave a file
// without a record, never a record without a file (except for a lost
// directory sync, or a file deleted by hand). Close therefore saves the
// usage totals (the usage key) and writes <data_dir>/clean after badger is
// closed; Open removes both. Open always drops records whose file is
// missing, checked against directory listings. After a clean stop it takes
// Usage from the saved totals; without the marker (an unclean stop, a
// Store whose files and metadata disagreed, or a data dir from before the
// marker existed) it sums the records, and, for every file without a
// record, re-hashes it: a match is adopted (recorded with kind "" and the
// file's size), anything else is moved to <data_dir>/quarantine/<alg>-<hex>.

// takeCleanMarker reports whether the previous stop was clean and removes
// the marker durably, so that a crash from now on counts as unclean.
func takeCleanMarker(dir string) (bool, error) {
	err := os.Remove(filepath.Join(dir, cleanFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return false, fmt.Errorf("storage: clean marker: %w", err)
	}
	return true, nil
}

// markClean writes the empty clean marker durably.
func markClean(dir string) error {
	f, err := os.Create(filepath.Join(dir, cleanFile))
	if err == nil {
		err = errors.Join(f.Sync(), f.Close())
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("storage: write clean marker: %w", err)
	}
	return nil
}

// reconcile brings the blob/ records and blobs/ in line at Open (see the
// comment at the top of this file) and computes Usage. It goes one
// blobs/<alg>/<2 hex> directory at a time, in key order: one listing per
// directory, against the records under the matching key prefix, so memory
// holds one directory's names and no file is stat'ed.
//
// After a clean stop the usage totals that Close saved are trusted and the
// records are read keys-only (a million blobs: 512 listings and a key scan,
// no record decoded). Otherwise every record is decoded for its size, and
// files without a record are re-hashed and adopted or quarantined.
func (s *Store) reconcile(clean bool) error {
	saved, haveSaved, err := s.takeUsage()
	if err != nil {
		return fmt.Errorf("storage: reconcile: %w", err)
	}
	trust := clean && haveSaved
	r := &reconciler{s: s, sizes: !trust, adopt: !clean}
	for _, alg := range []string{"sha256", "sha512"} {
		for i := range 256 {
			if err := r.dir(alg, fmt.Sprintf("%02x", i)); err != nil {
				return fmt.Errorf("storage: reconcile: %w", err)
			}
		}
	}
	if err := r.finish(); err != nil {
		return fmt.Errorf("storage: reconcile: %w", err)
	}
	if trust {
		s.addUsage(saved.Bytes-r.missingBytes, saved.Blobs-len(r.missing))
	} else {
		s.addUsage(r.bytes, r.blobs)
	}
	if len(r.missing) > 0 {
		s.log.Info("dropped metadata of missing blob files", "blobs", len(r.missing))
	}
	if r.adopted+r.quarantined > 0 {
		s.log.Info("reconciled blob files without metadata after an unclean stop",
			"adopted", r.adopted, "quarantined", r.quarantined)
	}
	return nil
}

// reconciler is the state of one reconcile pass.
type reconciler struct {
	s     *Store
	sizes bool // decode every record for its size (usage not saved)
	adopt bool // adopt or quarantine files without a record (unclean stop)

	bytes        int64    // sizes of the records kept (when sizes)
	blobs        int      // records kept (when sizes)
	missing      []string // records without a file, to drop
	missingBytes int64
	adoptions    []adoption // adopted files, recorded in batches
	staleAccess  [][]byte   // atime/ keys of digests without a record
	adopted      int
	quarantined  int
}

type adoption struct {
	digest string
	size   int64
	at     time.Time // created and last accessed, as far as is known
}

// adoptBatch is how many adopted records one write batch holds.
const adoptBatch = 1024

// dir reconciles blobs/<alg>/<xx> with the records under blob/<alg>:<xx>.
func (r *reconciler) dir(alg, xx string) error {
	names, err := listNames(filepath.Join(r.s.dir, blobsDir, alg, xx))
	if err != nil {
		return err
	}
	prefix := []byte(blobPrefix + alg + ":" + xx)
	recorded := make(map[string]struct{}, len(names))
	err = r.s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = r.sizes
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			d := string(item.Key()[len(blobPrefix):])
			_, hex, _ := strings.Cut(d, ":")
			_, found := names[hex]
			delete(names, hex)
			var size int64
			if r.sizes || !found {
				var rec blobRecord
				if err := item.Value(func(b []byte) error { return decodeItem(d, b, &rec) }); err != nil {
					return err
				}
				size = rec.Size
			}
			switch {
			case !found:
				r.missing = append(r.missing, d)
				r.missingBytes += size
				continue
			case r.sizes:
				r.bytes, r.blobs = r.bytes+size, r.blobs+1
			}
			recorded[hex] = struct{}{}
		}
		return r.staleAccessKeys(txn, alg, xx, recorded)
	})
	if err != nil || !r.adopt {
		return err
	}
	for name := range names { // files without a record
		p, err := parseDigest(alg + ":" + name)
		if err != nil || p.hex[:2] != xx {
			r.s.log.Warn("ignoring a file in blobs/ that is not named by a digest", "path", filepath.Join(blobsDir, alg, xx, name))
			continue
		}
		if err := r.orphan(p); err != nil {
			return err
		}
	}
	return nil
}

// staleAccessKeys collects the atime/ keys under <alg>:<xx> whose digest
// has no record (kept) in recorded: a Touch flushed after a removal.
func (r *reconciler) staleAccessKeys(txn *badger.Txn, alg, xx string, recorded map[string]struct{}) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(accessPrefix + alg + ":" + xx)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().Key()
		hex := string(key[len(accessPrefix)+len(alg)+1:])
		if _, ok := recorded[hex]; !ok {
			r.staleAccess = append(r.staleAccess, it.Item().KeyCopy(nil))
		}
	}
	return nil
}

// orphan re-hashes a file without a record: a match is adopted (recorded in
// the next batch), anything else quarantined.
func (r *reconciler) orphan(p parsedDigest) error {
	size, mtime, ok, err := r.s.hashFileTime(p)
	if err != nil {
		return err
	}
	if !ok {
		r.quarantined++
		r.s.verifyFailures.Add(1)
		return quarantineFile(r.s, p)
	}
	// Its last access is unknown: the file's time, so that a crash does
	// not make every adopted blob the most recently used.
	if now := r.s.now().UTC(); !mtime.Before(now) {
		mtime = now
	}
	r.adoptions = append(r.adoptions, adoption{p.String(), size, mtime.UTC()})
	r.adopted++
	if len(r.adoptions) >= adoptBatch {
		return r.flushAdoptions()
	}
	return nil
}

// flushAdoptions records the adopted files in one write batch (a single
// sync, not one per file).
func (r *reconciler) flushAdoptions() error {
	if len(r.adoptions) == 0 {
		return nil
	}
	wb := r.s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, a := range r.adoptions {
		rec := mergeBlobRecord(blobRecord{}, a.size, KindUnknown, "", a.at)
		if err := wb.Set(blobKey(a.digest), rec.encode()); err != nil {
			return err
		}
		r.bytes, r.blobs = r.bytes+a.size, r.blobs+1
	}
	r.adoptions = r.adoptions[:0]
	return wb.Flush()
}

// finish records the last adoptions, and drops the records without a file
// and the access times without a record.
func (r *reconciler) finish() error {
	if err := r.flushAdoptions(); err != nil {
		return err
	}
	if len(r.missing)+len(r.staleAccess) == 0 {
		return nil
	}
	wb := r.s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, d := range r.missing {
		if err := errors.Join(wb.Delete(blobKey(d)), wb.Delete(accessKey(d))); err != nil {
			return err
		}
	}
	for _, k := range r.staleAccess {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// listNames returns the names in dir (none if it does not exist).
func listNames(dir string) (map[string]struct{}, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]struct{}{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	names := make(map[string]struct{}, len(list))
	for _, n := range list {
		names[n] = struct{}{}
	}
	return names, nil
}

// hashFile hashes the committed file of p: its size and whether its
// content matches the digest.
func (s *Store) hashFile(p parsedDigest) (int64, bool, error) {
	n, _, ok, err := s.hashFileTime(p)
	return n, ok, err
}

// hashBufs are read buffers for hashFileTime: a start-up walk hashes a
// file per blob.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// hashFileTime is hashFile that also returns the file's modification time.
func (s *Store) hashFileTime(p parsedDigest) (int64, time.Time, bool, error) {
	f, err := os.Open(p.path(s.dir))
	if err != nil {
		return 0, time.Time{}, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, false, err
	}
	h := p.newHash()
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	n, err := io.CopyBuffer(h, f, *buf)
	if err != nil {
		return n, fi.ModTime(), false, fmt.Errorf("hash %s: %w", p, err)
	}
	return n, fi.ModTime(), hex.EncodeToString(h.Sum(nil)) == p.hex, nil
}

// quarantineFile moves the committed file of p to
// quarantine/<alg>-<hex>, replacing an earlier one of that name.
func quarantineFile(s *Store, p parsedDigest) error {
	dir := filepath.Join(s.dir, quarantineDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, p.alg+"-"+p.hex)
	if err := os.Rename(p.path(s.dir), dst); err != nil {
		return err
	}
	s.log.Warn("quarantined a blob file whose content does not match its digest",
		"digest", p.String(), "path", dst)
	return syncDir(dir)
}

// savedUsage is the usage key's value: Usage at a clean Close.
type savedUsage struct {
	Bytes int64 `json:"bytes"`
	Blobs int   `json:"blobs"`
}

// saveUsage records Usage for the next Open (Close, when the stop is clean).
func (s *Store) saveUsage() error {
	bytes, blobs := s.Usage()
	return s.update(func(txn *badger.Txn) error {
		return setJSON(txn, []byte(usageKey), savedUsage{Bytes: bytes, Blobs: blobs})
	})
}

// takeUsage reads and deletes the saved usage: it is only true of the
// stop that saved it, and only with the clean marker.
func (s *Store) takeUsage() (savedUsage, bool, error) {
	var u savedUsage
	found := false
	err := s.update(func(txn *badger.Txn) error {
		err := getJSON(txn, []byte(usageKey), &u)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return txn.Delete([]byte(usageKey))
	})
	return u, found, err
}
