package cache

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
)

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// All bytes of a bad blob arrive and its EOF is held back: every reader,
// of the whole blob or of a window inside it, gets all of its window but
// the last byte, and once the verdict (a mismatch) comes, never that byte.
func TestReadersHoldTheLastByteUntilVerified(t *testing.T) {
	c, ns := newTestCache(t)
	good := bytes.Repeat([]byte("y"), 300<<10)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	dgst := dig(good)
	eof := make(chan struct{})
	src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
		return &oci.RemoteBlob{Body: &slowEOF{ctx: ctx, r: bytes.NewReader(bad), release: eof}, Size: int64(len(bad))}, nil
	})
	ctx := context.Background()
	f, _ := c.startFill(ns, src, repo, dgst)
	windows := [][2]int64{{0, int64(len(bad))}, {10, 1000}}
	counts := make([]*countingWriter, len(windows))
	errs := make(chan error, len(windows))
	for i, win := range windows { // one reader (client) each
		b, err := c.follow(ctx, f, repo)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		counts[i] = &countingWriter{}
		go func() { _, err := b.WriteRange(ctx, counts[i], win[0], win[1]); errs <- err }()
	}
	for i, win := range windows { // everything but the last byte: the readers are at the hold
		waitUntil(t, 10*time.Second, fmt.Sprintf("window %v to have all but its last byte", win), func() bool { return counts[i].n.Load() >= win[1]-1 })
	}
	if st := f.state(); st.done || st.verified {
		t.Fatalf("the fill ended before its EOF was released (done %v, verified %v)", st.done, st.verified)
	}
	close(eof)
	for range windows {
		if err := <-errs; err == nil {
			t.Error("a reader of a blob that failed verification finished without an error")
		}
	}
	for i, win := range windows {
		if got := counts[i].n.Load(); got != win[1]-1 {
			t.Errorf("window %v: reader wrote %d bytes, want %d (all but the held last byte)", win, got, win[1]-1)
		}
	}
}
