package storage

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// errKept is returned inside a removal transaction whose keep check said
// no; it never leaves the package.
var errKept = errors.New("kept")

// Evicted is a blob removed by Evict or Remove: its metadata as it was, and
// how many tag records pointing at it (a manifest) were dropped with it.
type Evicted struct {
	BlobInfo
	Tags int
}

// Evict removes unpinned blobs, least recently used first (LastAccess, then
// Created, then digest), until Usage is at most target bytes or only pinned
// blobs and blobs for which skip is true remain. Each removal writes one
// ChangeEvict entry (CauseEvict) in its first transaction. skip (nil:
// none) is called without store locks held, from the calling goroutine
// only; the cache passes "being filled or read right now". It returns what
// it removed, in order, also when it fails part way.
//
// Each removal does what Remove does (metadata first, then the file), up
// to evictBatch blobs per transaction, fewer when their links, refs and
// tags would not fit one (see batch.go). Concurrency: Evict may run while
// blobs are read and committed. A commit of the same digest is serialised
// with its removal by the digest lock, so it either lands first (and is
// removed with it) or after (and stays, with its metadata). A reader that
// already holds the *os.File keeps reading after the unlink; one that Stat'ed
// the blob just before may get ErrNotFound from OpenBlob and must treat it as
// a miss. Pending Touch times are written first, so they count.
func (s *Store) Evict(target int64, skip func(digest string) bool) ([]Evicted, error) {
	if skip == nil {
		skip = func(string) bool { return false }
	}
	if err := s.FlushAccess(); err != nil {
		return nil, fmt.Errorf("storage: evict: %w", err)
	}
	var out []Evicted
	kept := make(map[string]bool) // candidates found pinned, skipped or gone
	for {
		bytes, _ := s.Usage()
		if bytes <= target {
			return out, nil
		}
		cands, err := s.evictionCandidates(bytes-target, func(d string) bool { return kept[d] || skip(d) })
		if err != nil || len(cands) == 0 {
			return out, err
		}
		for chunk := range slices.Chunk(cands, evictBatch) {
			if bytes, _ := s.Usage(); bytes <= target {
				return out, nil
			}
			evs, err := s.evictBatch(chunk, skip, kept)
			out = append(out, evs...)
			if err != nil {
				return out, fmt.Errorf("storage: evict: %w", err)
			}
		}
	}
}

// evictBatch is how many blobs one eviction transaction removes: one sync
// for all of them, not one each (10,000 evictions in well under a second).
const evictBatch = 1024

// evictBatch removes the blobs ds with as few metadata transactions as
// badger's limits allow (deleteBatchMeta), then their files, holding their
// digest locks throughout. Blobs for which skip is now true, pinned ones
// and ones already gone are left and marked in kept.
func (s *Store) evictBatch(ds []string, skip func(string) bool, kept map[string]bool) ([]Evicted, error) {
	todo := make([]string, 0, len(ds))
	for _, d := range ds {
		if skip(d) {
			kept[d] = true
			continue
		}
		todo = append(todo, d)
	}
	unlock := s.lockDigests(todo)
	defer unlock()
	removed := make(map[string]bool, len(todo))
	defer func() {
		for _, d := range todo {
			if !removed[d] {
				kept[d] = true
			}
		}
	}()
	var out []Evicted
	for next := todo; len(next) > 0; {
		var evs []Evicted
		var rest []string
		var partial map[string]bool
		err := s.updateLogged(func(txn *badger.Txn, log *txnLog) (err error) {
			evs, rest, partial, err = deleteBatchMeta(txn, log, CauseEvict, next, s.newBudget())
			return err
		})
		if errors.Is(err, badger.ErrTxnTooBig) {
			evs, err := s.evictEach(next, kept) // the budget missed: one blob a transaction
			for _, ev := range evs {
				removed[ev.Digest] = true
			}
			return append(out, evs...), err
		}
		if err != nil {
			return out, err
		}
		var ferr error
		for i, ev := range evs {
			removed[ev.Digest] = true
			if partial[ev.Digest] {
				n, err := s.finishDrop(ev.Digest)
				evs[i].Tags += n
				ferr = errors.Join(ferr, err)
			}
			p, _ := parseDigest(ev.Digest)
			ferr = errors.Join(ferr, s.removed(evs[i], p, removeBlobFile))
		}
		out = append(out, evs...)
		if ferr != nil {
			return out, ferr
		}
		next = rest
	}
	return out, nil
}

// deleteBatchMeta deletes, within b, the metadata of blobs from the start
// of ds, as deleteBlobMeta does for one, skipping pinned blobs and ones
// already gone. It returns what it removed, the digests it had no room
// for (rest, for the next transaction) and the removed blobs whose keys
// did not all fit (partial: marked, for finishDrop). The first blob it
// removes always goes, partial if need be, so each call makes progress.
// Each removed blob gets a ChangeEvict entry with cause, within b too.
//
// A read-write transaction may hold one iterator at a time, and each new
// one sorts the writes pending so far: so one iterator, created before any
// delete, seeks to each digest's pin/, ref/ and link index keys, then the
// tags are walked once for all the manifests among them.
func deleteBatchMeta(txn *badger.Txn, log *txnLog, cause Cause, ds []string, b *txnBudget) (
	evs []Evicted, rest []string, partial map[string]bool, err error) {
	var all []Evicted
	for _, d := range ds {
		rec, err := readRecord(txn, d)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		all = append(all, Evicted{BlobInfo: rec.info(d)})
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	var dels [][]byte
	partial = map[string]bool{}
	for i, ev := range all {
		if it.Seek(pinsPrefix(ev.Digest)); it.ValidForPrefix(pinsPrefix(ev.Digest)) {
			continue // pinned since the scan
		}
		saved := *b
		keys := [][]byte{blobKey(ev.Digest), accessKey(ev.Digest)}
		fits := b.take(keys...) && b.takeEntry(log.cost(evictChange(ev.Digest, cause)))
		complete := false
		if fits {
			keys, complete = collectBlobKeys(it, ev.Digest, b, keys)
		}
		if !fits || !complete {
			if len(evs) > 0 { // no room: for the next transaction
				*b = saved
				for _, r := range all[i:] {
					rest = append(rest, r.Digest)
				}
				break
			}
			partial[ev.Digest] = true
		}
		dels = append(dels, keys...)
		evs = append(evs, ev)
		if partial[ev.Digest] {
			for _, r := range all[i+1:] {
				rest = append(rest, r.Digest)
			}
			break
		}
	}
	it.Close()
	dels, err = batchTags(txn, evs, partial, b, dels)
	if err != nil {
		return nil, nil, nil, err
	}
	for d := range partial {
		if err := markDrop(txn, d, isManifest(evs, d)); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, ev := range evs {
		if _, err := log.add(evictChange(ev.Digest, cause)); err != nil {
			return nil, nil, nil, err
		}
	}
	return evs, rest, partial, deleteKeys(txn, dels)
}

// evictChange is the change log entry of blob d's removal.
func evictChange(d string, cause Cause) Change {
	return Change{Kind: ChangeEvict, Cause: cause, Digest: d}
}

// batchTags appends to dels, within b, the tag/ records pointing at the
// manifests among evs (one walk of every tag), counting them in evs. A
// manifest whose tags do not all fit is marked partial.
func batchTags(txn *badger.Txn, evs []Evicted, partial map[string]bool, b *txnBudget, dels [][]byte) ([][]byte, error) {
	manifests := map[string]int{} // digest -> index in evs
	for i, ev := range evs {
		if ev.Kind == KindManifest && !partial[ev.Digest] {
			manifests[ev.Digest] = i
		}
	}
	if len(manifests) == 0 {
		return dels, nil
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(tagPrefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var rec TagRecord
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
			return nil, err
		}
		i, ok := manifests[rec.Digest]
		if !ok || partial[rec.Digest] {
			continue
		}
		k := it.Item().KeyCopy(nil)
		if !b.take(k) {
			partial[rec.Digest] = true // finishDrop walks the tags again
			continue
		}
		dels = append(dels, k)
		evs[i].Tags++
	}
	return dels, nil
}

func isManifest(evs []Evicted, d string) bool {
	for _, ev := range evs {
		if ev.Digest == d {
			return ev.Kind == KindManifest
		}
	}
	return false
}

// evictEach removes ds one transaction each (the caller holds their locks).
func (s *Store) evictEach(ds []string, kept map[string]bool) ([]Evicted, error) {
	var out []Evicted
	for _, d := range ds {
		ev, err := s.removeLocked(d, hasPins, removeBlobFile, CauseEvict)
		switch {
		case errors.Is(err, errKept) || errors.Is(err, ErrNotFound):
			kept[d] = true
		case err != nil:
			if ev.Digest != "" { // only the file removal failed
				out = append(out, ev)
			}
			return out, fmt.Errorf("%s: %w", d, err)
		default:
			out = append(out, ev)
		}
	}
	return out, nil
}

// Remove removes one blob as Evict does, pinned or not (its pins stay): an
// admin's removal, logged as a ChangeEvict entry with CauseAdmin.
// ErrNotFound if it is not stored.
func (s *Store) Remove(digest string) error {
	if _, err := parseDigest(digest); err != nil {
		return err
	}
	unlock := s.lockDigest(digest)
	defer unlock()
	if _, err := s.removeLocked(digest, nil, removeBlobFile, CauseAdmin); err != nil {
		return fmt.Errorf("storage: remove %s: %w", digest, err)
	}
	return nil
}

// removeLocked removes blob d; the caller holds its digest lock. For crash
// safety the metadata goes first: one transaction deletes the blob/ record
// and, within badger's limits, its links (both halves), its ref/ keys and,
// for a manifest, the tag/ records pointing at it; what did not fit goes in
// further transactions (finishDrop, see batch.go). If keep(txn, d) is true
// in the first transaction, nothing is removed (errKept); otherwise that
// transaction also writes the removal's ChangeEvict entry, with cause.
// Then dispose removes or moves the file; if that fails, the file is left
// without metadata and the next Open walks blobs/ (it adopts or
// quarantines it).
// ErrNotFound if d has no record.
func (s *Store) removeLocked(d string, keep func(*badger.Txn, string) bool,
	dispose func(*Store, parsedDigest) error, cause Cause) (Evicted, error) {
	p, err := parseDigest(d)
	if err != nil {
		return Evicted{}, err
	}
	var ev Evicted
	partial := false
	err = s.updateLogged(func(txn *badger.Txn, log *txnLog) error {
		rec, err := readRecord(txn, d)
		if err != nil {
			return err
		}
		if keep != nil && keep(txn, d) {
			return errKept
		}
		var n int
		n, partial, err = deleteBlobMeta(txn, d, rec.Kind == KindManifest, s.newBudget())
		ev = Evicted{BlobInfo: rec.info(d), Tags: n}
		if err != nil {
			return err
		}
		_, err = log.add(evictChange(d, cause))
		return err
	})
	if err != nil {
		return Evicted{}, err
	}
	var derr error
	if partial {
		n, err := s.finishDrop(d)
		ev.Tags += n
		derr = err // the marker stays: the next Open or commit of d finishes it
	}
	if err := errors.Join(derr, s.removed(ev, p, dispose)); err != nil {
		return ev, fmt.Errorf("storage: %w", err)
	}
	return ev, nil
}

// removed finishes the removal of ev, whose metadata is gone: the
// in-memory state, then the file (by dispose). A file that cannot be
// disposed of stays without metadata, and the store is marked dirty so
// that the next Open walks blobs/.
func (s *Store) removed(ev Evicted, p parsedDigest, dispose func(*Store, parsedDigest) error) error {
	s.forget(ev.Digest, ev.Size)
	if ev.Tags > 0 {
		s.tagRecs.purge() // tag records pointing at the manifest went with it
	}
	if err := dispose(s, p); err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("%s: metadata removed, file kept: %w", ev.Digest, err)
	}
	return nil
}

// removeBlobFile unlinks a committed file; already gone is fine. The
// directory is not fsynced: a file that comes back after a crash has no
// metadata and is adopted again by the next unclean start.
func removeBlobFile(s *Store, p parsedDigest) error {
	err := os.Remove(p.path(s.dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// deleteBlobMeta deletes the blob/ and atime/ keys of d and, within b,
// its ref/ keys, its links and, if it is a manifest, the tag/ records
// whose digest is d (a walk of all tags). It returns how many tags it
// deleted, and partial if some keys did not fit: then it writes d's drop
// marker, for finishDrop.
func deleteBlobMeta(txn *badger.Txn, d string, manifest bool, b *txnBudget) (tags int, partial bool, err error) {
	own := [][]byte{blobKey(d), accessKey(d)}
	b.take(own...)
	keys, tags, complete, err := blobKeys(txn, d, manifest, b)
	if err != nil {
		return 0, false, err
	}
	if !complete {
		if err := markDrop(txn, d, manifest); err != nil {
			return 0, false, err
		}
	}
	return tags, !complete, deleteKeys(txn, append(own, keys...))
}

// tagsPointingAt returns the keys of the tag/ records whose digest is d.
func tagsPointingAt(txn *badger.Txn, d string) ([][]byte, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(tagPrefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		var rec TagRecord
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
			return nil, err
		}
		if rec.Digest == d {
			out = append(out, it.Item().KeyCopy(nil))
		}
	}
	return out, nil
}

// candidate is a blob considered for eviction.
type candidate struct {
	digest           string
	size             int64
	access, creation time.Time
}

// older orders candidates least recently used first.
func (c candidate) older(o candidate) bool {
	if !c.access.Equal(o.access) {
		return c.access.Before(o.access)
	}
	if !c.creation.Equal(o.creation) {
		return c.creation.Before(o.creation)
	}
	return c.digest < o.digest
}

// newestFirst is a heap of candidates with the most recently used on top.
type newestFirst []candidate

func (h newestFirst) Len() int           { return len(h) }
func (h newestFirst) Less(i, j int) bool { return h[j].older(h[i]) }
func (h newestFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *newestFirst) Push(x any)        { *h = append(*h, x.(candidate)) }
func (h *newestFirst) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// evictionCandidates returns the least recently used unpinned blobs not
// excluded whose sizes add up to at least need bytes (or all of them if
// they do not), oldest first. It keeps only that many in memory: a heap
// whose newest entry is dropped whenever the others suffice.
func (s *Store) evictionCandidates(need int64, exclude func(string) bool) ([]string, error) {
	pinned, err := s.pinnedDigests()
	if err != nil {
		return nil, err
	}
	var h newestFirst
	var sum int64
	err = s.forEachBlob(func(info BlobInfo) error {
		if pinned[info.Digest] || exclude(info.Digest) {
			return nil
		}
		c := candidate{info.Digest, info.Size, info.LastAccess, info.Created}
		if h.Len() > 0 && sum >= need && !c.older(h[0]) {
			return nil // newer than every blob already enough: the common case
		}
		heap.Push(&h, c)
		sum += info.Size
		for h.Len() > 1 && sum-h[0].size >= need {
			sum -= heap.Pop(&h).(candidate).size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: evict: %w", err)
	}
	slices.SortFunc(h, func(a, b candidate) int {
		if a.older(b) {
			return -1
		}
		return 1
	})
	out := make([]string, len(h))
	for i, c := range h {
		out[i] = c.digest
	}
	return out, nil
}
