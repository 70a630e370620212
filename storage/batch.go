package storage

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// Removals that can touch any number of keys (a blob's links, refs and
// tags; a repository's tags of one digest) are split into transactions
// that fit badger's limits: with cairn's 8 MiB memtables one transaction
// holds about ten thousand entries (MaxBatchCount, MaxBatchSize), past
// which badger answers ErrTxnTooBig. Each transaction collects keys against
// a txnBudget of half those limits, leaving room for the few writes a
// transaction adds beyond its budgeted keys (a record, seq, a marker, a
// change log entry). An eviction batch budgets its change log entries,
// one per blob.
//
// A blob's removal commits at its first transaction (the blob/ record
// goes); if its other keys did not all fit, that transaction also writes
// drop/<digest>, and later ones (finishDrop, under the digest lock) delete
// the rest and the marker last. An Open finishes a marker left by a crash,
// and a commit of the same digest finishes it first, so the links of a
// removed blob never come back with a new copy of it.

// dropPrefix keys mark a removed blob whose keys are not all deleted yet;
// the value is dropManifest for a manifest (its tags go too), else empty.
const dropPrefix = "drop/"

const dropManifest = "manifest"

func dropKey(d string) []byte { return []byte(dropPrefix + d) }

// errStopIter ends an eachItem walk early without an error.
var errStopIter = errors.New("stop")

// txnBudget is what one transaction may still write of its share of
// badger's limits, counted as badger counts entries (txn.checkSize).
type txnBudget struct{ count, size int64 }

// newBudget returns half of badger's per-transaction limits.
func (s *Store) newBudget() *txnBudget {
	return &txnBudget{count: s.db.MaxBatchCount() / 2, size: s.db.MaxBatchSize() / 2}
}

// take reserves room for deleting keys, all or none.
func (b *txnBudget) take(keys ...[]byte) bool {
	size := int64(0)
	for _, k := range keys {
		size += int64(len(k)) + 12 // badger: meta bytes and the version suffix
	}
	if int64(len(keys)) > b.count || size > b.size {
		return false
	}
	b.count -= int64(len(keys))
	b.size -= size
	return true
}

// takeEntry reserves room for writing one entry of size bytes (key, value
// and badger's overhead, as txnLog.cost counts them).
func (b *txnBudget) takeEntry(size int64) bool {
	if b.count < 1 || size > b.size {
		return false
	}
	b.count--
	b.size -= size
	return true
}

// collectBlobKeys appends to keys, within b, the ref/ keys of d and both
// halves of each of its links, using it (a keys-only iterator without a
// prefix, created before any write of txn). complete is false if some did
// not fit.
func collectBlobKeys(it *badger.Iterator, d string, b *txnBudget, keys [][]byte) ([][]byte, bool) {
	refs := refsPrefix(d)
	for it.Seek(refs); it.ValidForPrefix(refs); it.Next() {
		k := it.Item().KeyCopy(nil)
		if !b.take(k) {
			return keys, false
		}
		keys = append(keys, k)
	}
	idx := linkIndexPrefixOf(d)
	for it.Seek(idx); it.ValidForPrefix(idx); it.Next() {
		k := it.Item().KeyCopy(nil)
		pair := [][]byte{k}
		if ns, repo, ok := splitIndexKey(k, d); ok {
			pair = linkKeys(ns, repo, d)
		}
		if !b.take(pair...) {
			return keys, false
		}
		keys = append(keys, pair...)
	}
	return keys, true
}

// collectTags appends to keys, within b, the tag/ records whose digest is
// d (a walk of every tag). complete is false if some did not fit; n is
// how many were appended.
func collectTags(txn *badger.Txn, d string, b *txnBudget, keys [][]byte) (_ [][]byte, n int, complete bool, err error) {
	tags, err := tagsPointingAt(txn, d)
	if err != nil {
		return keys, 0, false, err
	}
	for _, k := range tags {
		if !b.take(k) {
			return keys, n, false, nil
		}
		keys = append(keys, k)
		n++
	}
	return keys, n, true, nil
}

// blobKeys collects, within b, what a removal of d deletes besides its
// blob/ and atime/ keys: refs, links and (for a manifest) tags.
func blobKeys(txn *badger.Txn, d string, manifest bool, b *txnBudget) (keys [][]byte, tags int, complete bool, err error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	keys, complete = collectBlobKeys(it, d, b, nil)
	it.Close()
	if manifest && complete {
		keys, tags, complete, err = collectTags(txn, d, b, keys)
	}
	return keys, tags, complete, err
}

// deleteKeys deletes keys in txn.
func deleteKeys(txn *badger.Txn, keys [][]byte) error {
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// markDrop records that the keys of removed blob d are not all gone.
func markDrop(txn *badger.Txn, d string, manifest bool) error {
	v := ""
	if manifest {
		v = dropManifest
	}
	return txn.Set(dropKey(d), []byte(v))
}

// finishDrop deletes what is left of removed blob d while its drop marker
// exists, one budgeted transaction at a time, the marker in the last. It
// returns how many tag records it deleted. The caller holds d's digest
// lock (or runs in Open, before anything else).
func (s *Store) finishDrop(d string) (int, error) {
	tags := 0
	for {
		n, done := 0, false
		err := s.update(func(txn *badger.Txn) error {
			item, err := txn.Get(dropKey(d))
			if errors.Is(err, badger.ErrKeyNotFound) {
				n, done = 0, true
				return nil
			}
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			keys, m, complete, err := blobKeys(txn, d, string(v) == dropManifest, s.newBudget())
			if err != nil {
				return err
			}
			if complete {
				keys = append(keys, dropKey(d))
			}
			n, done = m, complete
			return deleteKeys(txn, keys)
		})
		tags += n
		if err != nil || done {
			return tags, err
		}
	}
}

// finishDrops finishes every drop marker (Open: a removal cut by a crash).
func (s *Store) finishDrops() error {
	ds, err := s.keysUnder([]byte(dropPrefix))
	if err != nil {
		return err
	}
	for _, d := range ds {
		if _, err := s.finishDrop(d); err != nil {
			return err
		}
	}
	if len(ds) > 0 {
		s.log.Info("finished removing the metadata of blobs removed before a crash", "blobs", len(ds))
	}
	return nil
}

// finishPendingDrop finishes d's drop marker if it has one (a commit of d,
// under its digest lock, so that old links do not come back with it).
func (s *Store) finishPendingDrop(d string) error {
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(dropKey(d))
		found = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err == nil && found {
		_, err = s.finishDrop(d)
	}
	return err
}
