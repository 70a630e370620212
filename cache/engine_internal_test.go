package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

func dig(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

type fnSource func(ctx context.Context, off int64) (*upstream.Blob, error)

func (f fnSource) Open(ctx context.Context, off int64) (*upstream.Blob, error) { return f(ctx, off) }

// slowEOF: returns data, then waits d (or ctx) before io.EOF.
type slowEOF struct {
	ctx  context.Context
	r    io.Reader
	wait time.Duration
}

func (s *slowEOF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		select {
		case <-time.After(s.wait):
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
	}
	return n, err
}
func (s *slowEOF) Close() error { return nil }

func newTestCache(t *testing.T) (*Cache, *Namespace) {
	st, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return testCacheOn(t, st)
}

// testCacheOn is a cache of one namespace, docker.io, over st.
func testCacheOn(t *testing.T, st *storage.Store) (*Cache, *Namespace) {
	c, err := New(st, []Namespace{{Name: "docker.io", TagTTL: time.Minute, FillIdleTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c, c.nss["docker.io"]
}

var repo = route.Repo{Namespace: "docker.io", Name: "library/x"}

// Source says size 0, the digest is of non-empty content: verification
// fails, but the reader (sendBlob: WriteHeader(200, CL 0) then
// WriteRange(0, 0)) has no byte to hold back.
func TestZeroSizeFollower(t *testing.T) {
	c, ns := newTestCache(t)
	dgst := dig([]byte("not empty"))
	src := fnSource(func(ctx context.Context, off int64) (*upstream.Blob, error) {
		return &upstream.Blob{Body: &slowEOF{ctx: ctx, r: bytes.NewReader(nil), wait: 200 * time.Millisecond}, Size: 0}, nil
	})
	ctx := context.Background()
	f, _ := c.startFill(ns, src, repo, dgst)
	b, err := c.follow(ctx, f, repo)
	if err != nil {
		t.Logf("follow: %v (reader got a clean error before headers)", err)
		return
	}
	defer b.Close()
	t.Logf("follower with Size()=%d: the handler now sends 200 Content-Length: 0", b.Size())
	n, err := b.WriteRange(ctx, io.Discard, 0, 0)
	t.Errorf("headers (200, Content-Length: 0) are out before the fill is verified; WriteRange then returns n=%d err=%v: the client saw a complete 200", n, err)
}

// The window between Commit (w done) and f.done: newFollower recurses
// with context.Background, ignoring the client's ctx and growing the stack.
func TestFollowerSpinAfterCommit(t *testing.T) {
	c, ns := newTestCache(t)
	data := bytes.Repeat([]byte("x"), 1<<20)
	dgst := dig(data)
	src := fnSource(func(ctx context.Context, off int64) (*upstream.Blob, error) {
		return &upstream.Blob{Body: io.NopCloser(bytes.NewReader(data)), Size: int64(len(data))}, nil
	})
	c.mu.Lock() // stands in for contention on c.mu (startFill of other digests) or the fill goroutine being descheduled
	f := newFill(repo, dgst, src, ns.FillIdleTimeout)
	c.inflight[dgst] = f
	go c.runFill(context.Background(), f)
	for { // wait for the commit
		if _, err := c.store.Stat(dgst); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ret := make(chan error, 1)
	go func() { _, err := c.follow(ctx, f, repo); ret <- err }()
	hold := 3 * time.Second
	select {
	case err := <-ret:
		c.mu.Unlock()
		t.Logf("follow returned in time: %v", err)
		return
	case <-time.After(hold):
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	depth := int(ms.StackInuse >> 20)
	_ = strings.Count
	c.mu.Unlock()
	err := <-ret
	t.Errorf("follow ignored its ctx (50ms) for %v while the fill sat between Commit and done; StackInuse %d MiB; returned err=%v", hold, depth, err)
}
