package storage

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prune removes every unpinned blob last accessed (LastAccess) before
// olderThan and for which skip (nil: none) is false, oldest first. It is
// Evict with an age instead of a size target: pending Touch times are
// written first, each removal is the one Remove does (metadata in one
// transaction, then the file, under the digest lock), and a blob pinned or
// read again between the scan and its removal is kept. skip is called
// without store locks held, from the calling goroutine only. It returns
// what it removed, in order, also when it fails part way. Prune is an
// admin's call: each removal is a ChangeEvict entry with CauseAdmin.
func (s *Store) Prune(olderThan time.Time, skip func(digest string) bool) ([]Evicted, error) {
	if skip == nil {
		skip = func(string) bool { return false }
	}
	if err := s.FlushAccess(); err != nil {
		return nil, fmt.Errorf("storage: prune: %w", err)
	}
	cands, err := s.pruneCandidates(olderThan, skip)
	if err != nil {
		return nil, err
	}
	var out []Evicted
	for _, d := range cands {
		ev, err := s.pruneOne(d, olderThan, skip)
		switch {
		case errors.Is(err, errKept) || errors.Is(err, ErrNotFound):
		case err != nil:
			if ev.Digest != "" { // only the file removal failed
				out = append(out, ev)
			}
			return out, fmt.Errorf("storage: prune %s: %w", d, err)
		default:
			out = append(out, ev)
		}
	}
	return out, nil
}

// pruneCandidates lists the unpinned, not skipped blobs last accessed
// before olderThan, least recently used first.
func (s *Store) pruneCandidates(olderThan time.Time, skip func(string) bool) ([]string, error) {
	var old []candidate
	err := s.forEachBlob(func(info BlobInfo) error {
		if info.LastAccess.Before(olderThan) {
			old = append(old, candidate{info.Digest, info.Size, info.LastAccess, info.Created})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: prune: %w", err)
	}
	pinned, err := s.pinnedDigests()
	if err != nil {
		return nil, fmt.Errorf("storage: prune: %w", err)
	}
	sortOldestFirst(old)
	out := make([]string, 0, len(old))
	for _, c := range old {
		if !pinned[c.digest] && !skip(c.digest) {
			out = append(out, c.digest)
		}
	}
	return out, nil
}

// sortOldestFirst orders candidates least recently used first.
func sortOldestFirst(cs []candidate) {
	slices.SortFunc(cs, func(a, b candidate) int {
		if a.older(b) {
			return -1
		}
		return 1
	})
}

// pruneOne removes d unless skip(d) is now true, it is pinned, or it was
// accessed at or after olderThan since the scan (errKept).
func (s *Store) pruneOne(d string, olderThan time.Time, skip func(string) bool) (Evicted, error) {
	if skip(d) {
		return Evicted{}, errKept
	}
	unlock := s.lockDigest(d)
	defer unlock()
	if info, err := s.Stat(d); err == nil && !info.LastAccess.Before(olderThan) {
		return Evicted{}, errKept // a pending Touch since the flush
	}
	keep := func(txn *badger.Txn, d string) bool {
		rec, err := readRecord(txn, d)
		if err != nil {
			return true
		}
		return hasPins(txn, d) || !rec.LastAccess.Before(olderThan)
	}
	return s.removeLocked(d, keep, removeBlobFile, CauseAdmin)
}
