package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/cairn-mirror/cairn/internal/oci"
)

// A reader that waits for the verified file (the source gave no size) is
// not marked in use between the commit and its openCommitted: the fill is
// already out of inflight, so the evictor may remove the blob just fetched
// and the reader gets storage.ErrNotFound (a 500) instead of the blob.
func TestUnsizedFillEvictedBeforeItsReaderOpensIt(t *testing.T) {
	c, ns := newTestCache(t)
	c.limit = Limit{Max: 1, High: 0.5, Low: 0} // evict everything evictable
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				c.EnforceLimit()
			}
		}
	})
	fails := 0
	for i := range 200 {
		data := bytes.Repeat([]byte(fmt.Sprint(i)), 4096)
		dgst := dig(data)
		src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
			return &oci.RemoteBlob{Body: io.NopCloser(bytes.NewReader(data)), Size: -1}, nil
		})
		f, _ := c.startFill(ns, src, repo, dgst)
		b, err := c.follow(context.Background(), f, repo)
		if err != nil {
			fails++
			continue
		}
		b.Close()
	}
	close(stop)
	wg.Wait()
	if fails > 0 {
		t.Errorf("%d of 200 readers of a just-committed blob failed: it was evicted before they opened it", fails)
	}
}
