package cache

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/upstream"
)

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// All bytes of a bad blob arrive, EOF is late: no reader may have the whole
// window before the verdict.
func TestHoldLastByte(t *testing.T) {
	c, ns := newTestCache(t)
	good := bytes.Repeat([]byte("y"), 300<<10)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	dgst := dig(good)
	src := fnSource(func(ctx context.Context, off int64) (*upstream.Blob, error) {
		return &upstream.Blob{Body: &slowEOF{ctx: ctx, r: bytes.NewReader(bad), wait: 500 * time.Millisecond}, Size: int64(len(bad))}, nil
	})
	ctx := context.Background()
	f, _ := c.startFill(ns, src, repo, dgst)
	b, err := c.follow(ctx, f, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, win := range [][2]int64{{0, int64(len(bad))}, {10, 1000}} {
		var w countingWriter
		go b.WriteRange(ctx, &w, win[0], win[1])
		time.Sleep(300 * time.Millisecond) // all bytes written, EOF pending
		if got := w.n.Load(); got >= win[1] {
			t.Errorf("window %v: reader had all %d bytes before the fill was verified", win, got)
		}
	}
}
