package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

const (
	// accessFlushThreshold is how many distinct touched digests wait in
	// memory before Touch writes them to badger.
	accessFlushThreshold = 4096
	// accessResolution is how old a blob's recorded access time must be
	// before a read records a new one.
	accessResolution = time.Minute
	// digestLockStripes is the number of digest locks (see lockDigest).
	digestLockStripes = 256
)

// Touch records that digest was read now. It costs a map write and an
// in-memory cache refresh, never a disk write: the times reach badger in
// batches, when accessFlushThreshold digests are pending (the Touch that
// reaches it writes them, unless a flush is already running), on
// FlushAccess, on Evict and on Close. Stat reflects a Touch at once. A
// blob whose cached access time is less than accessResolution old is not
// touched again: hot blobs cost nothing more. Touching a digest that is
// not stored is harmless. If the batch write fails, its times are dropped
// (and logged): they only order eviction.
func (s *Store) Touch(digest string) {
	now := s.monotonic(s.now().UTC())
	if info, ok := s.infos.Peek(digest); ok && now.Sub(info.LastAccess) < accessResolution {
		return
	}
	s.accessMu.Lock()
	s.pending[digest] = now
	full := len(s.pending) >= accessFlushThreshold
	s.accessMu.Unlock()
	s.touchInfo(digest, now)
	if !full || !s.flushMu.TryLock() {
		return
	}
	defer s.flushMu.Unlock()
	if err := s.flushLocked(); err != nil {
		s.log.Warn("dropped blob access times", "err", err)
	}
}

// FlushAccess writes the pending access times (see Touch) to badger now.
// On error those times are dropped.
func (s *Store) FlushAccess() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.flushLocked(); err != nil {
		return fmt.Errorf("storage: flush access times: %w", err)
	}
	return nil
}

// flushLocked takes the pending times and writes them; the caller holds
// flushMu, so batches reach badger in the order they were taken and a
// later time is never overwritten by an earlier one.
func (s *Store) flushLocked() error {
	s.accessMu.Lock()
	batch := s.pending
	if len(batch) == 0 {
		s.accessMu.Unlock()
		return nil
	}
	s.pending = make(map[string]time.Time, accessFlushThreshold)
	s.accessMu.Unlock()
	if err := s.writeAccess(batch); err != nil {
		return fmt.Errorf("%d blobs: %w", len(batch), err)
	}
	return nil
}

// writeAccess writes the access times in batch as atime/ keys, blind (no
// read), in one write batch. A digest removed meanwhile may leave an
// atime/ key without a record: Open drops those.
func (s *Store) writeAccess(batch map[string]time.Time) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for d, at := range batch {
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(at.UnixNano()))
		if err := wb.Set(accessKey(d), v); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// withPendingAccess applies a Touch not yet written to badger to info.
func (s *Store) withPendingAccess(info BlobInfo) BlobInfo {
	s.accessMu.Lock()
	at, ok := s.pending[info.Digest]
	s.accessMu.Unlock()
	if ok && at.After(info.LastAccess) {
		info.LastAccess = at
	}
	return info
}

// touchInfo moves the cached LastAccess of d forward, if d is cached. It
// never adds an entry, so it cannot bring back a removed blob.
func (s *Store) touchInfo(d string, at time.Time) {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	if info, ok := s.infos.Peek(d); ok && at.After(info.LastAccess) {
		info.LastAccess = at
		s.infos.Add(d, info)
	}
}

// cacheInfo adds info read from badger to the cache, unless a removal ran
// since epoch (s.removals read before the read transaction): the record
// read may be one that removal has just deleted.
func (s *Store) cacheInfo(info BlobInfo, epoch uint64) {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	if s.removals.Load() == epoch {
		s.infos.Add(info.Digest, info)
	}
}

// forget updates the in-memory state after the blob/ record of d, of the
// given size, was deleted.
func (s *Store) forget(d string, size int64) {
	s.infoMu.Lock()
	s.removals.Add(1)
	s.infos.Remove(d)
	s.infoMu.Unlock()
	s.accessMu.Lock()
	delete(s.pending, d)
	s.accessMu.Unlock()
	s.addUsage(-size, -1)
}

// Usage returns the total size and number of stored blobs (blob/ records).
// It is computed at Open and kept up to date by commits and removals.
func (s *Store) Usage() (bytes int64, blobs int) {
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	return s.usedBytes, s.usedBlobs
}

func (s *Store) addUsage(bytes int64, blobs int) {
	s.usageMu.Lock()
	s.usedBytes += bytes
	s.usedBlobs += blobs
	s.usageMu.Unlock()
}

// lockDigest locks the stripe of digest d and returns its unlock. It makes
// the publish-then-record of a commit and the delete-metadata-then-file of
// a removal atomic with respect to each other, and Pin atomic with respect
// to eviction's pin check. Holders of one stripe never take another; only
// lockDigests takes several, always in ascending order, so stripes cannot
// deadlock.
func (s *Store) lockDigest(d string) func() {
	m := &s.digestLocks[stripe(d)]
	m.Lock()
	return m.Unlock
}

// lockDigests locks the stripes of all of ds, in ascending order, and
// returns the unlock of them all.
func (s *Store) lockDigests(ds []string) func() {
	var held [digestLockStripes]bool
	for _, d := range ds {
		held[stripe(d)] = true
	}
	for i, h := range held {
		if h {
			s.digestLocks[i].Lock()
		}
	}
	return func() {
		for i, h := range held {
			if h {
				s.digestLocks[i].Unlock()
			}
		}
	}
}

// stripe is d's digest lock: FNV-1a, allocation free.
func stripe(d string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(d); i++ {
		h ^= uint32(d[i])
		h *= 16777619
	}
	return h % digestLockStripes
}

// monotonic never returns a time before one it returned already: a clock
// stepped back must not move recorded access times back (atime/ keys are
// written blind).
func (s *Store) monotonic(t time.Time) time.Time {
	for {
		last := s.lastTouch.Load()
		if t.UnixNano() <= last {
			return time.Unix(0, last).UTC()
		}
		if s.lastTouch.CompareAndSwap(last, t.UnixNano()) {
			return t
		}
	}
}
