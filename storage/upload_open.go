package storage

// Upload sessions at Open, and the per-session locks (see upload.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// forEachUpload calls fn with every upload/ record, decoded (err set if it
// is malformed, or its ID is), in one read transaction.
func (s *Store) forEachUpload(fn func(id string, rec uploadRecord, err error) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(uploadPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(uploadPrefix):])
			var rec uploadRecord
			err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) })
			if err == nil && !validUploadID(id) {
				err = fmt.Errorf("malformed upload id %q", id)
			}
			if err := fn(id, rec, err); err != nil {
				return err
			}
		}
		return nil
	})
}

// reconcileUploads checks the upload/ records against their files at Open,
// before tmp/ is emptied. A record that is malformed, or whose file is
// missing, not a regular file or shorter than its offset, is dropped (the
// client starts again); a file longer than its offset is cut to it. The
// sessions kept are counted, for NewUpload's limits. It returns the names
// in tmp/ to keep.
func (s *Store) reconcileUploads() (map[string]bool, error) {
	keep := make(map[string]bool)
	var drop []string
	users := make(map[string]int)
	err := s.forEachUpload(func(id string, rec uploadRecord, err error) error {
		name := uploadFilePrefix + id
		ok := false
		if err == nil {
			ok, err = fitUploadFile(filepath.Join(s.dir, tmpDir, name), rec.Offset)
			if err != nil {
				return err
			}
		}
		if ok {
			keep[name] = true
			users[rec.User]++
		} else {
			drop = append(drop, id)
		}
		return nil
	})
	if err == nil && len(drop) > 0 {
		err = s.deleteUploadRecords(drop)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: reconcile uploads: %w", err)
	}
	if len(drop) > 0 {
		s.log.Info("dropped upload sessions whose files are missing or short", "uploads", len(drop))
	}
	s.uploadCount.set(users)
	return keep, nil
}

// fitUploadFile reports whether path is a regular file of at least offset
// bytes, cutting it to offset bytes if longer.
func fitUploadFile(path string, offset int64) (bool, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !fi.Mode().IsRegular() || fi.Size() < offset:
		return false, nil
	case fi.Size() > offset:
		return true, os.Truncate(path, offset)
	}
	return true, nil
}

func (s *Store) deleteUploadRecords(ids []string) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, id := range ids {
		if err := wb.Delete(uploadKey(id)); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// sessionLocks hands out one mutex per upload session, made on demand and
// dropped when no one holds or waits for it. The zero value is ready.
type sessionLocks struct {
	mu sync.Mutex
	m  map[string]*sessionLock
}

type sessionLock struct {
	sync.Mutex
	refs int // holders and waiters, guarded by sessionLocks.mu
}

// lock locks session id and returns its unlock.
func (l *sessionLocks) lock(id string) func() {
	e := l.ref(id)
	e.Lock()
	return func() { e.Unlock(); l.unref(id, e) }
}

// tryLock is lock without waiting; ok is false if id is locked.
func (l *sessionLocks) tryLock(id string) (unlock func(), ok bool) {
	e := l.ref(id)
	if !e.TryLock() {
		l.unref(id, e)
		return nil, false
	}
	return func() { e.Unlock(); l.unref(id, e) }, true
}

func (l *sessionLocks) ref(id string) *sessionLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*sessionLock)
	}
	e := l.m[id]
	if e == nil {
		e = &sessionLock{}
		l.m[id] = e
	}
	e.refs++
	return e
}

func (l *sessionLocks) unref(id string, e *sessionLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, id)
	}
}

// uploadCounts counts the open upload sessions, in all and per user, for
// NewUpload's limits. Open sets them from the records it keeps; after it,
// a session counts from NewUpload's reservation until its record is
// deleted (commit, cancel, expiry, a broken session dropped). The zero
// value is ready.
type uploadCounts struct {
	mu     sync.Mutex
	total  int
	byUser map[string]int
}

// set replaces the counts with those of users (sessions by user).
func (c *uploadCounts) set(users map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byUser, c.total = users, 0
	for _, n := range users {
		c.total += n
	}
}

// reserve counts one more session of user, unless that would pass lim.
func (c *uploadCounts) reserve(user string, lim UploadLimits) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (lim.Sessions > 0 && c.total >= lim.Sessions) || (lim.PerUser > 0 && c.byUser[user] >= lim.PerUser) {
		return false
	}
	if c.byUser == nil {
		c.byUser = make(map[string]int)
	}
	c.total++
	c.byUser[user]++
	return true
}

// release counts one session of user fewer. It never goes below zero: a
// record whose write failed after landing can be released twice (by
// NewUpload, then when dropped as broken).
func (c *uploadCounts) release(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.byUser[user]
	if !ok {
		return
	}
	c.total--
	if n <= 1 {
		delete(c.byUser, user)
	} else {
		c.byUser[user] = n - 1
	}
}

func (c *uploadCounts) get(user string) (total, ofUser int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, c.byUser[user]
}
