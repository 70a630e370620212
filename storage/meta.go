package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// schemaVersion is the metadata layout this build reads and writes.
//
//	1: JSON blob/ records
//	2: binary blob/ records (record.go; JSON ones still read), atime/ keys
//	3: the repo/ index of links (links.go), built at Open from older dirs;
//	   drop/ markers (batch.go)
const schemaVersion = 3

// maxConflictRetries bounds retries of a transaction that lost a race
// (badger.ErrConflict) with a concurrent one.
const maxConflictRetries = 100

// Badger keys. Fields are separated by \x00, since names contain '/'.
const (
	sep        = "\x00"
	blobPrefix = "blob/"
	linkPrefix = "link/"
	tagPrefix  = "tag/"
	refPrefix  = "ref/"
	pinPrefix  = "pin/"
	seqKey     = "seq"
	schemaKey  = "schema"
	usageKey   = "usage" // Usage at a clean Close (see reconcile.go)
	// accessPrefix keys hold a blob's last access time (8 bytes, big
	// endian Unix nanoseconds): written blind in batches, so a flush of
	// access times reads nothing. The blob/ record's last_access (its
	// commit) counts too; the later of the two wins.
	accessPrefix = "atime/"
	// uploadPrefix keys hold upload sessions (JSON, see upload.go).
	uploadPrefix = "upload/"
)

func blobKey(d string) []byte            { return []byte(blobPrefix + d) }
func accessKey(d string) []byte          { return []byte(accessPrefix + d) }
func linkKey(ns, repo, d string) []byte  { return []byte(linkPrefix + ns + sep + repo + sep + d) }
func tagKey(ns, repo, tag string) []byte { return []byte(tagPrefix + ns + sep + repo + sep + tag) }
func tagsPrefix(ns, repo string) []byte  { return []byte(tagPrefix + ns + sep + repo + sep) }
func refKey(parent, child string) []byte { return []byte(refPrefix + parent + sep + child) }
func refsPrefix(parent string) []byte    { return []byte(refPrefix + parent + sep) }
func pinKey(d, reason string) []byte     { return []byte(pinPrefix + d + sep + reason) }
func pinsPrefix(d string) []byte         { return []byte(pinPrefix + d + sep) }
func uploadKey(id string) []byte         { return []byte(uploadPrefix + id) }

// checkNames rejects empty names and names containing the key separator.
func checkNames(names ...string) error {
	for _, n := range names {
		if n == "" || strings.Contains(n, sep) {
			return fmt.Errorf("storage: %q: %w", n, ErrInvalidName)
		}
	}
	return nil
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) update(fn func(*badger.Txn) error) error {
	var err error
	for range maxConflictRetries {
		if err = s.db.Update(fn); !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}

// getJSON decodes the value at key into v; ErrNotFound if absent.
func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

// setJSON encodes v as JSON at key.
func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

// getUint reads a decimal uint64 value; 0 if the key is absent.
func getUint(txn *badger.Txn, key string) (uint64, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(b), 10, 64)
}

// Seq returns the current sequence number: 0 before the first change,
// then bumped by one for each entry of the change log (see changes.go), so
// it is the Seq of the last entry written.
func (s *Store) Seq() (uint64, error) {
	var n uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = getUint(txn, seqKey)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: seq: %w", err)
	}
	return n, nil
}

// checkSchema refuses a database written by a newer build, brings an
// older one up to this build's schema (the link index), and records the
// schema version. The version is written after the upgrade: a crash during
// it makes the next Open upgrade again.
func (s *Store) checkSchema() error {
	var v uint64
	err := s.db.View(func(txn *badger.Txn) (err error) {
		v, err = getUint(txn, schemaKey)
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("storage: read schema version: %w", err)
	case v > schemaVersion:
		return fmt.Errorf("storage: data dir %s has metadata schema version %d, "+
			"newer than the %d this build supports; run a newer cairn", s.dir, v, schemaVersion)
	case v == schemaVersion:
		return nil
	}
	if v < linkIndexSchema { // a new data dir (0): an empty walk
		n, err := s.buildLinkIndex()
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Info("built the digest -> repositories index of links", "links", n, "schema", v)
		}
	}
	return s.update(func(txn *badger.Txn) error {
		return txn.Set([]byte(schemaKey), []byte(strconv.Itoa(schemaVersion)))
	})
}

// keysUnder returns the suffixes of all keys that start with prefix, in
// lexical order.
func (s *Store) keysUnder(prefix []byte) ([]string, error) {
	var out []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	return out, err
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// blobPageSize is how many blob/ records forEachBlob reads per transaction.
const blobPageSize = 1024

// forEachBlob calls fn for every blob/ record in digest order, stopping at
// the first error. It reads in pages of short read transactions, so a long
// walk (eviction, verification) does not hold one old snapshot: records
// written or removed meanwhile may or may not be seen.
func (s *Store) forEachBlob(fn func(BlobInfo) error) error {
	after := ""
	for {
		page, err := s.blobPage(after)
		if err != nil {
			return err
		}
		for _, info := range page {
			if err := fn(info); err != nil {
				return err
			}
		}
		if len(page) < blobPageSize {
			return nil
		}
		after = page[len(page)-1].Digest
	}
}

// blobPage returns up to blobPageSize blob records whose digest sorts
// after the given one ("" for the first page), with their access times
// (a second iterator over atime/ walks alongside: both are in digest order).
func (s *Store) blobPage(after string) ([]BlobInfo, error) {
	var page []BlobInfo
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(blobPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		aopts := badger.DefaultIteratorOptions
		aopts.Prefix = []byte(accessPrefix)
		at := txn.NewIterator(aopts)
		defer at.Close()
		at.Seek(accessKey(after))
		for it.Seek(blobKey(after)); it.Valid() && len(page) < blobPageSize; it.Next() {
			d := string(it.Item().Key()[len(blobPrefix):])
			if d == after {
				continue
			}
			var rec blobRecord
			if err := it.Item().Value(func(b []byte) error { return decodeItem(d, b, &rec) }); err != nil {
				return err
			}
			for ; at.Valid() && string(at.Item().Key()[len(accessPrefix):]) < d; at.Next() {
			}
			if at.Valid() && string(at.Item().Key()[len(accessPrefix):]) == d {
				if err := at.Item().Value(func(b []byte) error { rec.withAccess(b); return nil }); err != nil {
					return err
				}
			}
			page = append(page, rec.info(d))
		}
		return nil
	})
	return page, err
}
