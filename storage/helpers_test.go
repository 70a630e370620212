package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// openStore opens a Store on dir and closes it when the test ends.
func openStore(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// commitBlob writes and commits b, failing the test on error.
func commitBlob(t *testing.T, s *Store, b []byte, kind Kind) BlobInfo {
	t.Helper()
	w, err := s.NewWriter(digestOf(b), int64(len(b)))
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	info, err := w.Commit(kind, "application/octet-stream")
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return info
}

// dirEntries lists the names of files (not directories) below dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func mustSeq(t *testing.T, s *Store) uint64 {
	t.Helper()
	n, err := s.Seq()
	if err != nil {
		t.Fatalf("Seq: %v", err)
	}
	return n
}

// testFill is the ManifestWrite of tests that do not look at the change
// log: a fill of docker.io/library/test.
var testFill = ManifestWrite{Namespace: "docker.io", Repo: "library/test", Cause: CauseFill}
