package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s *Store) *fakeClock {
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = c.Now
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d and returns the new time.
func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// rawRecord reads the blob/ record of d and its access time straight from
// badger.
func rawRecord(t *testing.T, s *Store, d string) blobRecord {
	t.Helper()
	var rec blobRecord
	if err := s.db.View(func(txn *badger.Txn) (err error) { rec, err = readRecord(txn, d); return err }); err != nil {
		t.Fatalf("read blob/%s: %v", d, err)
	}
	return rec
}

// fakeDigest returns a valid digest of nothing stored.
func fakeDigest(i int) string { return digestOf([]byte(fmt.Sprintf("not stored %d", i))) }

func TestTouchBatchesWrites(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	clk := newClock(s)
	created := clk.Now()
	d := commitBlob(t, s, []byte("touched"), KindLayer).Digest

	checkAccess := func(step string, wantDisk, wantStat time.Time) {
		t.Helper()
		if got := rawRecord(t, s, d).LastAccess; !got.Equal(wantDisk) {
			t.Errorf("%s: last_access on disk = %v, want %v", step, got, wantDisk)
		}
		info, err := s.Stat(d)
		if err != nil || !info.LastAccess.Equal(wantStat) {
			t.Errorf("%s: Stat LastAccess = %v (%v), want %v", step, info.LastAccess, err, wantStat)
		}
	}

	t1 := clk.Advance(time.Minute)
	s.Touch(d)
	checkAccess("after Touch", created, t1)
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	checkAccess("after FlushAccess", t1, t1)

	t2 := clk.Advance(time.Minute)
	s.Touch(d)
	for i := range accessFlushThreshold - 2 {
		s.Touch(fakeDigest(i))
	}
	checkAccess("one below the threshold", t1, t2)
	s.Touch(fakeDigest(-1))
	checkAccess("at the threshold", t2, t2)

	t3 := clk.Advance(time.Minute)
	s.Touch(d)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	clk = newClock(s)
	clk.Advance(time.Hour)
	checkAccess("after Close and reopen", t3, t3)

	// A Touch of a blob not in the in-memory cache still shows in Stat.
	s.infos.Purge()
	t4 := clk.Advance(time.Minute)
	s.Touch(d)
	checkAccess("touched while not cached", t3, t4)
}

func TestTouchNeverMovesBackOrResurrects(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	d := commitBlob(t, s, []byte("blob"), KindLayer).Digest
	late := clk.Advance(time.Hour)
	s.Touch(d)
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	// A commit again (an older last_access in the record than in atime/)
	// does not move it back.
	clk.Advance(-time.Minute)
	commitBlob(t, s, []byte("blob"), KindLayer)
	s.infos.Purge()
	if info, err := s.Stat(d); err != nil || !info.LastAccess.Equal(late) {
		t.Errorf("after a commit with an older clock: LastAccess %v (%v), want %v", info.LastAccess, err, late)
	}
	if err := s.Remove(d); err != nil {
		t.Fatal(err)
	}
	s.Touch(d)
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(d); !isNotFound(err) {
		t.Errorf("Stat after Remove and Touch = %v, want ErrNotFound", err)
	}
	// The access time written after the removal is dropped by the next Open.
	dir := s.DataDir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(accessKey(d))
		return err
	}); !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("atime/ key of a removed blob after reopen: %v, want dropped", err)
	}
}

// A blob read again within accessResolution is not queued again: a hot
// blob costs no further access-time writes.
func TestTouchResolution(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	d := commitBlob(t, s, []byte("hot"), KindLayer).Digest
	t1 := clk.Advance(time.Minute)
	s.Touch(d)
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(accessResolution / 2)
	s.Touch(d)
	s.accessMu.Lock()
	queued := len(s.pending)
	s.accessMu.Unlock()
	if info, _ := s.Stat(d); queued != 0 || !info.LastAccess.Equal(t1) {
		t.Errorf("touched again within the resolution: %d queued, LastAccess %v; want 0, %v", queued, info.LastAccess, t1)
	}
	t2 := clk.Advance(accessResolution)
	s.Touch(d)
	if info, _ := s.Stat(d); !info.LastAccess.Equal(t2) {
		t.Errorf("touched after the resolution: LastAccess %v, want %v", info.LastAccess, t2)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	checkUsage := func(step string, wantBytes int64, wantBlobs int) {
		t.Helper()
		if b, n := s.Usage(); b != wantBytes || n != wantBlobs {
			t.Errorf("%s: Usage() = %d bytes, %d blobs; want %d, %d", step, b, n, wantBytes, wantBlobs)
		}
	}
	checkUsage("empty", 0, 0)
	a := commitBlob(t, s, bytes.Repeat([]byte("a"), 100), KindLayer)
	commitBlob(t, s, bytes.Repeat([]byte("b"), 200), KindLayer)
	c := commitBlob(t, s, bytes.Repeat([]byte("c"), 300), KindLayer)
	checkUsage("three commits", 600, 3)
	commitBlob(t, s, bytes.Repeat([]byte("a"), 100), KindConfig)
	checkUsage("same blob again", 600, 3)
	m := []byte(`{"schemaVersion":2}`)
	if _, err := s.PutManifest(digestOf(m), "application/json", m, testFill); err != nil {
		t.Fatal(err)
	}
	checkUsage("manifest", 600+int64(len(m)), 4)
	if err := s.Remove(a.Digest); err != nil {
		t.Fatal(err)
	}
	checkUsage("remove", 500+int64(len(m)), 3)
	if err := s.Pin(c.Digest, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Evict(0, nil); err != nil {
		t.Fatal(err)
	}
	checkUsage("evict all but the pinned", 300, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkUsage("reopen", 300, 1)
	p, _ := parseDigest(c.Digest)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.path(dir)); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkUsage("reopen after the file was deleted by hand", 0, 0)
	if _, err := os.Stat(filepath.Join(dir, cleanFile)); !os.IsNotExist(err) {
		t.Errorf("clean marker while open: %v, want it removed by Open", err)
	}
}

// A clock stepped back (NTP) does not move a recorded access time back,
// even for a blob no longer in the in-memory cache: atime/ keys are
// written blind, so Touch never hands out an earlier time than before.
func TestTouchClockSteppedBack(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	d := commitBlob(t, s, []byte("blob"), KindLayer).Digest
	late := clk.Advance(time.Hour)
	s.Touch(d)
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	s.infos.Purge()
	clk.Advance(-30 * time.Minute)
	s.Touch(d)
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	s.infos.Purge()
	if info, err := s.Stat(d); err != nil || info.LastAccess.Before(late) {
		t.Errorf("LastAccess after a Touch with an earlier clock = %v (%v), want at least %v", info.LastAccess, err, late)
	}
}
