package cache

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/testdisk"
	"github.com/cairn-mirror/cairn/storage"
)

// Blob writes are refused (ENOSPC) unless they leave the store's reserve
// free, and badger's writes may eat into the reserve. On such a disk a
// small blob's fill must evict more than the blob's own bytes, or its
// retried write fails again and it goes uncached although cached blobs
// could have made room. Needs root for the tmpfs.
func TestMakeRoomCoversTheReserveDeficit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	testdisk.Mount(t, dir, "size=64m")
	const reserve = 16 << 20
	st, err := storage.Open(dir, storage.WithReserve(reserve))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, ns := testCacheOn(t, st)
	// Fill the disk with 1 MiB cached blobs, up to the reserve.
	committed := 0
	for i := 0; ; i++ {
		b := bytes.Repeat([]byte{byte(i), byte(i >> 8), 7}, (1<<20)/3)
		w, err := st.NewWriter(dig(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			w.Abort()
			if !isNoSpace(err) {
				t.Fatal(err)
			}
			break
		}
		if _, err := w.Commit(storage.KindUnknown, ""); err != nil {
			t.Fatal(err)
		}
		committed++
	}
	if committed < 8 {
		t.Fatalf("only %d blobs fit", committed)
	}
	// Metadata writes (badger) eat 2 MiB of the reserve, as it allows.
	if err := os.WriteFile(filepath.Join(dir, "badger-grew"), make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	// A 300 KiB blob is filled: its first write meets ENOSPC, makeRoom evicts.
	data := bytes.Repeat([]byte("small layer "), 300<<10/12)
	dgst := dig(data)
	src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
		return &oci.RemoteBlob{Body: io.NopCloser(bytes.NewReader(data[off:])), Size: int64(len(data)), Offset: off}, nil
	})
	f, _ := c.startFill(ns, src, repo, dgst)
	deadline := time.After(20 * time.Second)
	for {
		s := f.state()
		if s.done {
			if s.err != nil {
				used, blobs := st.Usage()
				t.Fatalf("fill failed with %d bytes in %d cached blobs still evictable: %v", used, blobs, s.err)
			}
			break
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("the fill did not end within 20 s (%d of %d bytes written)", s.written, len(data))
		}
	}
}
