package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// deleteRecord drops the blob/ record of d by hand, as a crash between a
// removal's transaction and its unlink (or a commit's rename and its
// record) would leave it, and forgets it in memory as the removal does.
func deleteRecord(t *testing.T, s *Store, d string) {
	t.Helper()
	info, err := s.Stat(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(blobKey(d)) }); err != nil {
		t.Fatal(err)
	}
	s.forget(d, info.Size)
}

// corrupt overwrites the start of d's committed file, keeping its size.
func corrupt(t *testing.T, dir, d string) {
	t.Helper()
	p, _ := parseDigest(d)
	f, err := os.OpenFile(p.path(dir), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrPermission) {
		if err = os.Chmod(p.path(dir), 0o644); err == nil {
			f, err = os.OpenFile(p.path(dir), os.O_WRONLY, 0)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("XX"), 0); err != nil {
		t.Fatal(err)
	}
}

func fileExists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestOpenReconcilesOrphanFiles(t *testing.T) {
	body := bytes.Repeat([]byte("orphan "), 100)
	tests := []struct {
		name string
		// orphan leaves a file without metadata and stops the store.
		orphan          func(t *testing.T, s *Store, d string)
		wantAdopted     bool
		wantQuarantined bool
	}{
		{"crash after metadata delete: adopted", func(t *testing.T, s *Store, d string) {
			deleteRecord(t, s, d)
			crash(t, s)
		}, true, false},
		{"removal failed after metadata delete: adopted", func(t *testing.T, s *Store, d string) {
			unlock := s.lockDigest(d)
			_, err := s.removeLocked(d, nil, func(*Store, parsedDigest) error { return errors.New("power cut") }, CauseAdmin)
			unlock()
			if err == nil {
				t.Fatal("removal with a failing unlink succeeded")
			}
			if err := s.Close(); err != nil { // dirty: must not mark the stop clean
				t.Fatal(err)
			}
		}, true, false},
		{"corrupt file: quarantined", func(t *testing.T, s *Store, d string) {
			deleteRecord(t, s, d)
			corrupt(t, s.DataDir(), d)
			crash(t, s)
		}, false, true},
		{"clean stop: not walked", func(t *testing.T, s *Store, d string) {
			deleteRecord(t, s, d)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			kept := commitBlob(t, s, []byte("kept"), KindConfig)
			d := commitBlob(t, s, body, KindLayer).Digest
			tt.orphan(t, s, d)

			s = openStore(t, dir)
			p, _ := parseDigest(d)
			info, err := s.Stat(d)
			if got := err == nil; got != tt.wantAdopted {
				t.Errorf("Stat after reopen = %+v, %v; want adopted %v", info, err, tt.wantAdopted)
			}
			if tt.wantAdopted && (info.Size != int64(len(body)) || info.Kind != KindUnknown) {
				t.Errorf("adopted record = %+v, want size %d, kind \"\"", info, len(body))
			}
			if got, want := fileExists(t, p.path(dir)), !tt.wantQuarantined; got != want {
				t.Errorf("file in blobs/: %v, want %v", got, want)
			}
			qpath := filepath.Join(dir, quarantineDir, "sha256-"+p.hex)
			if got := fileExists(t, qpath); got != tt.wantQuarantined {
				t.Errorf("file in quarantine/: %v, want %v", got, tt.wantQuarantined)
			}
			wantBytes, wantBlobs := kept.Size, 1
			if tt.wantAdopted {
				wantBytes, wantBlobs = wantBytes+int64(len(body)), 2
			}
			if b, n := s.Usage(); b != wantBytes || n != wantBlobs {
				t.Errorf("Usage() = %d, %d; want %d, %d", b, n, wantBytes, wantBlobs)
			}
			if _, err := s.Stat(kept.Digest); err != nil {
				t.Errorf("Stat(kept blob): %v", err)
			}
		})
	}
}

// crash stops s as a crash would for reconciliation: nothing marks the
// stop clean.
func crash(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.DataDir(), cleanFile)); err != nil {
		t.Fatalf("remove clean marker: %v", err)
	}
}

func TestVerify(t *testing.T) {
	s := openStore(t, t.TempDir())
	good1 := commitBlob(t, s, []byte("good one"), KindLayer)
	good2 := commitBlob(t, s, []byte("good two"), KindLayer)
	bad := commitBlob(t, s, []byte("bad bytes"), KindLayer)
	corrupt(t, s.DataDir(), bad.Digest)

	rep, err := s.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	wantBytes := good1.Size + good2.Size + bad.Size
	if rep.Checked != 3 || rep.Bytes != wantBytes || !slices.Equal(rep.Quarantined, []string{bad.Digest}) {
		t.Errorf("Verify = %+v, want 3 checked, %d bytes, [%s] quarantined", rep, wantBytes, bad.Digest)
	}
	if _, err := s.Stat(bad.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(corrupt) = %v, want ErrNotFound", err)
	}
	p, _ := parseDigest(bad.Digest)
	if !fileExists(t, filepath.Join(s.DataDir(), quarantineDir, "sha256-"+p.hex)) || fileExists(t, p.path(s.DataDir())) {
		t.Errorf("corrupt file not moved from blobs/ to quarantine/")
	}
	for _, want := range []string{"good one", "good two"} {
		f, _, err := s.OpenBlob(digestOf([]byte(want)))
		if err != nil {
			t.Fatalf("OpenBlob(good): %v", err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(got) != want {
			t.Errorf("read good blob = %q, %v; want %q", got, err, want)
		}
	}
	if b, n := s.Usage(); b != good1.Size+good2.Size || n != 2 {
		t.Errorf("Usage() = %d, %d; want %d, 2", b, n, good1.Size+good2.Size)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if rep, err := s.Verify(ctx); !errors.Is(err, context.Canceled) || rep.Checked != 0 {
		t.Errorf("Verify(cancelled) = %+v, %v; want nothing checked, context.Canceled", rep, err)
	}
}

// Usage across restarts: after a clean stop it comes from the totals Close
// saved, less the files deleted by hand meanwhile (their records dropped);
// after an unclean stop, or from a data dir without saved totals, from
// the records.
func TestOpenUsageAcrossStops(t *testing.T) {
	for _, stop := range []string{"clean", "clean, file deleted by hand", "unclean", "clean, no saved totals"} {
		t.Run(stop, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			a := commitBlob(t, s, []byte("first blob"), KindLayer)
			b := commitBlob(t, s, bytes.Repeat([]byte("second "), 50), KindLayer)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wantBytes, wantBlobs := a.Size+b.Size, 2
			switch stop {
			case "clean, file deleted by hand":
				p, _ := parseDigest(b.Digest)
				if err := os.Remove(p.path(dir)); err != nil {
					t.Fatal(err)
				}
				wantBytes, wantBlobs = a.Size, 1
			case "unclean":
				if err := os.Remove(filepath.Join(dir, cleanFile)); err != nil {
					t.Fatal(err)
				}
			case "clean, no saved totals":
				db, err := badger.Open(badgerOptions(filepath.Join(dir, metaDir), slog.New(slog.DiscardHandler)))
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(usageKey)) }); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			s = openStore(t, dir)
			if bytes, n := s.Usage(); bytes != wantBytes || n != wantBlobs {
				t.Errorf("Usage() = %d, %d; want %d, %d", bytes, n, wantBytes, wantBlobs)
			}
			if _, err := s.Stat(a.Digest); err != nil {
				t.Errorf("Stat(first): %v", err)
			}
			// The totals were taken: a crash now leaves nothing stale to trust.
			if err := s.db.View(func(txn *badger.Txn) error {
				_, err := txn.Get([]byte(usageKey))
				return err
			}); !errors.Is(err, badger.ErrKeyNotFound) {
				t.Errorf("the usage key outlived Open: %v", err)
			}
		})
	}
}
