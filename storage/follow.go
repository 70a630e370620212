package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Following the change log (see changes.go): a consumer keeps the Seq of
// the last entry it handled, asks Changes for what follows and, when
// nothing does, waits with WaitChange:
//
//	for {
//		cs, err := s.Changes(last, 100)
//		if errors.Is(err, storage.ErrChangesCompacted) { rescan; last = seq read before the rescan; continue }
//		...handle cs, then last = cs[len(cs)-1].Seq...
//		if len(cs) == 0 { s.WaitChange(ctx, last) }
//	}

// DefaultChangeRetention is how long change log entries are kept when
// WithChangeRetention is not given.
const DefaultChangeRetention = 7 * 24 * time.Hour

// Changes returns the change log entries with Seq > since, in seq order,
// at most limit (>= 1) of them; none when since is the last seq. Since 0
// reads from the start. If entries right after since are no longer in
// the log (compacted, see KeepChangeLog), or since is past the last seq,
// it returns ErrChangesCompacted: the consumer must rescan. The entries
// are one consistent read: no entry of a transaction still committing,
// and none missing before one that is returned.
func (s *Store) Changes(since uint64, limit int) ([]Change, error) {
	if limit < 1 {
		return nil, fmt.Errorf("storage: changes since %d: limit %d, want at least 1", since, limit)
	}
	var out []Change
	err := s.db.View(func(txn *badger.Txn) error {
		out = nil
		last, err := getUint(txn, seqKey)
		switch {
		case err != nil:
			return err
		case since > last:
			return fmt.Errorf("since is past the last seq %d (another data dir?): %w", last, ErrChangesCompacted)
		case since == last:
			return nil
		}
		out, err = readChanges(txn, since, limit)
		if err == nil && len(out) == 0 {
			err = fmt.Errorf("the entries after it are gone: %w", ErrChangesCompacted)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: changes since %d: %w", since, err)
	}
	return out, nil
}

// readChanges reads up to limit entries from since+1 on, stopping at the
// first gap (none is made by this build; one left by an older build that
// bumped seq without an entry shows as compacted at the next call).
func readChanges(txn *badger.Txn, since uint64, limit int) ([]Change, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(changePrefix)
	opts.PrefetchSize = min(limit, 100)
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []Change
	want := since + 1
	for it.Seek(changeKey(want)); it.Valid() && len(out) < limit; it.Next() {
		seq, ok := changeSeq(it.Item().Key())
		if !ok {
			return nil, fmt.Errorf("change log key %q: %w", it.Item().Key(), errBadChange)
		}
		if seq != want {
			break
		}
		var c Change
		err := it.Item().Value(func(b []byte) (err error) {
			c, err = decodeChange(seq, b)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("change log entry %d: %w", seq, err)
		}
		out = append(out, c)
		want++
	}
	return out, nil
}

// OldestChange returns the Seq of the oldest entry the log still holds,
// or the last seq plus one if it holds none (nothing written yet, or all
// compacted). A consumer whose last handled Seq is below OldestChange()-1
// has missed entries: Changes answers it ErrChangesCompacted.
func (s *Store) OldestChange() (uint64, error) {
	var oldest uint64
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(changePrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		if it.Rewind(); it.Valid() {
			var ok bool
			if oldest, ok = changeSeq(it.Item().Key()); !ok {
				return fmt.Errorf("change log key %q: %w", it.Item().Key(), errBadChange)
			}
			return nil
		}
		last, err := getUint(txn, seqKey)
		oldest = last + 1
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: oldest change: %w", err)
	}
	return oldest, nil
}

// WaitChange blocks until an entry with Seq > after has committed and
// returns the last committed seq; at once if one already has. It returns
// early with ctx's error when ctx ends, and with ErrClosed when the store
// closes (WaitChange is the one method that may be running when Close is
// called). It never polls: each commit of entries wakes the waiters, after
// the transaction has committed, so a Changes call made on waking sees
// the entries. It does not check after against the log: Changes does.
func (s *Store) WaitChange(ctx context.Context, after uint64) (uint64, error) {
	for {
		seq, next, closed := s.feed.state()
		switch {
		case closed:
			return seq, fmt.Errorf("storage: wait for a change after %d: %w", after, ErrClosed)
		case seq > after:
			return seq, nil
		}
		select {
		case <-next:
		case <-ctx.Done():
			return seq, fmt.Errorf("storage: wait for a change after %d: %w", after, ctx.Err())
		}
	}
}

// changeCompactBatch bounds the entries one compaction transaction deletes.
const changeCompactBatch = 1024

// CompactChanges deletes the change log entries written before before,
// oldest first, stopping at the first entry written at or after it (so
// what remains is a suffix of the log even if the clock went back), at
// most changeCompactBatch entries per transaction. It returns how many
// it deleted, also when it fails part way. It may run while entries are
// written and read.
func (s *Store) CompactChanges(before time.Time) (int, error) {
	total := 0
	for {
		n, more, err := s.compactBatch(before)
		total += n
		if err != nil {
			return total, fmt.Errorf("storage: compact the change log: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

// compactBatch is one transaction of CompactChanges; more reports that it
// stopped at the batch bound, not at a newer entry or the end.
func (s *Store) compactBatch(before time.Time) (n int, more bool, err error) {
	err = s.update(func(txn *badger.Txn) error {
		n, more = 0, false
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(changePrefix)
		it := txn.NewIterator(opts)
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			if len(keys) == changeCompactBatch {
				more = true
				break
			}
			var t time.Time
			if err := it.Item().Value(func(b []byte) (err error) { t, err = changeTime(b); return err }); err != nil {
				it.Close()
				return fmt.Errorf("change log key %q: %w", it.Item().Key(), err)
			}
			if !t.Before(before) {
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close() // before the deletes (see deleteBatchMeta)
		n = len(keys)
		return deleteKeys(txn, keys)
	})
	if err != nil {
		return 0, false, err
	}
	return n, more, nil
}

// KeepChangeLog compacts the change log (CompactChanges) to the retention
// window set by WithChangeRetention: at once, then every hour, or every
// retention window if shorter (at least every second), until ctx ends;
// then it returns nil. A failed pass is logged and tried again at the
// next. Run it under the errgroup of the process, ended before Close.
func (s *Store) KeepChangeLog(ctx context.Context) error {
	tick := time.NewTicker(compactEvery(s.retention))
	defer tick.Stop()
	for {
		if n, err := s.CompactChanges(s.now().Add(-s.retention)); err != nil {
			s.log.Warn("compacting the change log", "err", err)
		} else if n > 0 {
			s.log.Debug("compacted the change log", "entries", n, "retention", s.retention)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// compactEvery is how often KeepChangeLog compacts: entries outlive the
// window by at most this.
func compactEvery(retention time.Duration) time.Duration {
	return min(max(retention, time.Second), time.Hour)
}

// changeFeed wakes WaitChange callers when entries commit.
type changeFeed struct {
	mu     sync.Mutex
	seq    uint64        // the last committed seq
	next   chan struct{} // closed by the next publish or by close
	closed bool
}

func newChangeFeed() *changeFeed { return &changeFeed{next: make(chan struct{})} }

// publish records that seq has committed and wakes the waiters.
func (f *changeFeed) publish(seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq <= f.seq || f.closed {
		return
	}
	f.seq = seq
	close(f.next)
	f.next = make(chan struct{})
}

func (f *changeFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.next)
	}
}

func (f *changeFeed) state() (uint64, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq, f.next, f.closed
}
