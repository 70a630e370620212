package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cairn-mirror/cairn/internal/testdisk"
)

// Blob writes stop at the reserve with ENOSPC, so that badger, whose
// write-ahead logs are sparse memory-mapped files, can still write on a
// disk full of blobs (its next write on a truly full disk is a SIGBUS).
// A store fills a 32 MiB tmpfs with blobs, then writes metadata: access
// times, evictions. It runs in a child process, so that a crash fails
// the test. Needs root (CI runs as root).
func TestFullDiskKeepsRoomForMetadata(t *testing.T) {
	if dir := os.Getenv("CAIRN_TEST_FULLDISK_CHILD"); dir != "" {
		fillThenWriteMetadata(t, dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "data")
	testdisk.Mount(t, dir, "size=32m")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskKeepsRoomForMetadata$", "-test.v")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_FULLDISK_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
		t.Fatalf("the store on a full disk failed: %v\n%s", err, bytes.Join(lines[max(0, len(lines)-25):], []byte("\n")))
	}
}

func fillThenWriteMetadata(t *testing.T, dir string) {
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	full := false
	for i := 0; i < 1000 && !full; i++ {
		b := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 128<<10)
		w, err := s.NewWriter(digestOf(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			w.Abort()
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("write %d: %v, want ENOSPC", i, err)
			}
			full = true
			continue
		}
		if _, err := w.Commit(KindLayer, ""); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if !full {
		t.Fatal("the disk never filled")
	}
	for i := range 20000 {
		s.Touch(fakeDigest(i))
	}
	if err := s.FlushAccess(); err != nil {
		t.Fatalf("FlushAccess on a disk full of blobs: %v", err)
	}
	if ev, err := s.Evict(0, nil); err != nil || len(ev) == 0 {
		t.Fatalf("Evict on a disk full of blobs: %d evicted, %v", len(ev), err)
	}
	fmt.Fprintln(os.Stderr, "filled, flushed and evicted")
}
