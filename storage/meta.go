package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// schemaVersion is the metadata layout this build reads and writes.
const schemaVersion = 1

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
	seqKey     = "seq"
	schemaKey  = "schema"
)

func blobKey(d string) []byte            { return []byte(blobPrefix + d) }
func linkKey(ns, repo, d string) []byte  { return []byte(linkPrefix + ns + sep + repo + sep + d) }
func tagKey(ns, repo, tag string) []byte { return []byte(tagPrefix + ns + sep + repo + sep + tag) }
func tagsPrefix(ns, repo string) []byte  { return []byte(tagPrefix + ns + sep + repo + sep) }
func refKey(parent, child string) []byte { return []byte(refPrefix + parent + sep + child) }
func refsPrefix(parent string) []byte    { return []byte(refPrefix + parent + sep) }

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

// updateSeq is update for transactions that bump seq. They are serialised
// so that they do not all conflict on the seq key.
func (s *Store) updateSeq(fn func(*badger.Txn) error) error {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	return s.update(fn)
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

// bumpSeq increments seq inside txn and returns the new value.
func bumpSeq(txn *badger.Txn) (uint64, error) {
	n, err := getUint(txn, seqKey)
	if err != nil {
		return 0, fmt.Errorf("read seq: %w", err)
	}
	n++
	return n, txn.Set([]byte(seqKey), []byte(strconv.FormatUint(n, 10)))
}

// Seq returns the current sequence number: 0 before the first tag or
// manifest write, then bumped by one on each.
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

// checkSchema records the schema version in a new database and refuses a
// database written by a newer build.
func (s *Store) checkSchema() error {
	return s.update(func(txn *badger.Txn) error {
		v, err := getUint(txn, schemaKey)
		switch {
		case err != nil:
			return fmt.Errorf("storage: read schema version: %w", err)
		case v == 0:
			return txn.Set([]byte(schemaKey), []byte(strconv.Itoa(schemaVersion)))
		case v > schemaVersion:
			return fmt.Errorf("storage: data dir %s has metadata schema version %d, "+
				"newer than the %d this build supports; run a newer cairn", s.dir, v, schemaVersion)
		}
		return nil
	})
}

// reconcile drops blob metadata whose committed file is missing (deleted by
// hand, lost in a crash before the directory sync).
func (s *Store) reconcile() error {
	missing, err := s.missingBlobs()
	if err != nil {
		return fmt.Errorf("storage: reconcile: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range missing {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("storage: reconcile: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("storage: reconcile: %w", err)
	}
	s.log.Info("dropped metadata of missing blob files", "blobs", len(missing))
	return nil
}

// missingBlobs lists the blob/ keys whose file does not exist.
func (s *Store) missingBlobs() ([][]byte, error) {
	var missing [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(blobPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			if !s.blobFileExists(strings.TrimPrefix(string(key), blobPrefix)) {
				missing = append(missing, key)
			}
		}
		return nil
	})
	return missing, err
}

// blobFileExists reports whether digest d has a committed file. An
// unparseable digest counts as missing, so its metadata is dropped; a file
// that cannot be stat'ed for another reason counts as present.
func (s *Store) blobFileExists(d string) bool {
	p, err := parseDigest(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p.path(s.dir))
	return !errors.Is(err, fs.ErrNotExist)
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
