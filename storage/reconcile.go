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

	"github.com/dgraph-io/badger/v4"
)

// Start-up reconciliation of blobs/ with the blob/ records.
//
// A commit renames the file into blobs/ before it writes the record, and a
// removal deletes the record before the file, so a crash can leave a file
// without a record, never a record without a file (except for a lost
// directory sync, or a file deleted by hand). Close therefore writes
// <data_dir>/clean after badger is closed, and Open removes it. Open always
// drops records whose file is missing (a stat per record) and computes
// Usage from the records; without the marker (an unclean stop, a Store
// whose files and metadata disagreed, or a data dir from before the marker
// existed) it also walks blobs/ and, for every file without a record,
// re-hashes it: a match is adopted (recorded with kind "" and the file's
// size), anything else is moved to <data_dir>/quarantine/<alg>-<hex>.

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
// comment at the top of this file) and computes Usage.
func (s *Store) reconcile(clean bool) error {
	if err := s.dropMissing(); err != nil {
		return fmt.Errorf("storage: reconcile: %w", err)
	}
	if clean {
		return nil
	}
	if err := s.adoptOrphans(); err != nil {
		return fmt.Errorf("storage: reconcile: %w", err)
	}
	return nil
}

// dropMissing deletes blob/ records whose file is missing (deleted by hand,
// lost in a crash before the directory sync) and counts the others into
// Usage.
func (s *Store) dropMissing() error {
	var missing []string
	var bytes int64
	var blobs int
	files := &fileIndex{s: s}
	err := s.forEachBlob(func(info BlobInfo) error {
		if !files.has(info.Digest) {
			missing = append(missing, info.Digest)
			return nil
		}
		bytes, blobs = bytes+info.Size, blobs+1
		return nil
	})
	if err != nil {
		return err
	}
	s.addUsage(bytes, blobs)
	if len(missing) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, d := range missing {
		if err := wb.Delete(blobKey(d)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.log.Info("dropped metadata of missing blob files", "blobs", len(missing))
	return nil
}

// fileIndex answers whether a digest has a committed file from directory
// listings: records arrive in key order, so each blobs/<alg>/<2 hex>
// directory is read once and no file is stat'ed (start-up with a million
// blobs is 256 listings per algorithm, not a million stats).
type fileIndex struct {
	s     *Store
	dir   string
	names map[string]bool
	err   error // the listing failed: fall back to a stat per digest
}

// has reports whether d has a file. An unparseable digest counts as
// missing, so its metadata is dropped; a file that cannot be checked for
// another reason counts as present.
func (x *fileIndex) has(d string) bool {
	p, err := parseDigest(d)
	if err != nil {
		return false
	}
	if dir := filepath.Dir(p.path(x.s.dir)); dir != x.dir {
		x.dir, x.names, x.err = dir, map[string]bool{}, nil
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			x.err = err
		}
		for _, e := range entries {
			x.names[e.Name()] = true
		}
	}
	if x.err != nil {
		_, err := os.Stat(p.path(x.s.dir))
		return !errors.Is(err, fs.ErrNotExist)
	}
	return x.names[p.hex]
}

// adoptOrphans walks blobs/ and adopts or quarantines every file that has
// no blob/ record.
func (s *Store) adoptOrphans() error {
	var adopted, quarantined int
	err := s.walkBlobFiles(func(p parsedDigest) error {
		ok, err := s.adoptFile(p)
		switch {
		case err != nil:
			return err
		case ok:
			adopted++
		default:
			quarantined++
		}
		return nil
	})
	if adopted+quarantined > 0 {
		s.log.Info("reconciled blob files without metadata after an unclean stop",
			"adopted", adopted, "quarantined", quarantined)
	}
	return err
}

// walkBlobFiles calls fn for every file blobs/<alg>/<2 hex>/<hex> without a
// blob/ record. Files whose path is not a digest are logged and left alone.
func (s *Store) walkBlobFiles(fn func(parsedDigest) error) error {
	root := filepath.Join(s.dir, blobsDir)
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		p, ok := digestFromPath(root, path)
		if !ok {
			s.log.Warn("ignoring a file in blobs/ that is not named by a digest", "path", path)
			return nil
		}
		has, err := s.hasBlobRecord(p.String())
		if err != nil || has {
			return err
		}
		return fn(p)
	})
}

// digestFromPath parses root/<alg>/<2 hex>/<hex>.
func digestFromPath(root, path string) (parsedDigest, bool) {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return parsedDigest{}, false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 {
		return parsedDigest{}, false
	}
	p, err := parseDigest(parts[0] + ":" + parts[2])
	if err != nil || p.hex[:2] != parts[1] {
		return parsedDigest{}, false
	}
	return p, true
}

func (s *Store) hasBlobRecord(d string) (bool, error) {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(d))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// adoptFile re-hashes a file without metadata: if it matches its name it
// is recorded (true), else it is quarantined (false).
func (s *Store) adoptFile(p parsedDigest) (bool, error) {
	size, ok, err := s.hashFile(p)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, quarantineFile(s, p)
	}
	_, err = s.recordBlob(p.String(), size, KindUnknown, "", nil)
	return err == nil, err
}

// hashFile hashes the committed file of p: its size and whether its
// content matches the digest.
func (s *Store) hashFile(p parsedDigest) (int64, bool, error) {
	f, err := os.Open(p.path(s.dir))
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	h := p.newHash()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, false, fmt.Errorf("hash %s: %w", p, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)) == p.hex, nil
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
