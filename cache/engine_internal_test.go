package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

func dig(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

type fnSource func(ctx context.Context, off int64) (*oci.RemoteBlob, error)

func (f fnSource) Open(ctx context.Context, off int64) (*oci.RemoteBlob, error) { return f(ctx, off) }

// slowEOF: returns data, then waits (for wait to pass, or for release to
// close when it is set; or for ctx) before io.EOF.
type slowEOF struct {
	ctx     context.Context
	r       io.Reader
	wait    time.Duration
	release <-chan struct{}
}

func (s *slowEOF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		var late <-chan time.Time
		if s.release == nil {
			late = time.After(s.wait)
		}
		select {
		case <-late:
		case <-s.release:
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

// A source that says size 0 for a digest of non-empty content (its EOF
// late, so readers arrive while the fill is open): an empty blob has no
// last byte to hold back, so its reader waits for the verdict, and the
// failed verification reaches it as an error before any header is sent.
func TestZeroSizeFillOfNonEmptyDigestFailsItsReader(t *testing.T) {
	c, ns := newTestCache(t)
	dgst := dig([]byte("not empty"))
	src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
		return &oci.RemoteBlob{Body: &slowEOF{ctx: ctx, r: bytes.NewReader(nil), wait: 200 * time.Millisecond}, Size: 0}, nil
	})
	ctx := context.Background()
	f, _ := c.startFill(ns, src, repo, dgst)
	b, err := c.follow(ctx, f, repo)
	if err == nil {
		defer b.Close()
		n, err := b.WriteRange(ctx, io.Discard, 0, 0)
		t.Fatalf("follow returned a blob of size %d (WriteRange: n=%d err=%v): the handler would send a complete 200 with 0 bytes for a fill that fails verification", b.Size(), n, err)
	}
	if !errors.Is(err, ocierr.Unavailable) || !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("follow: %v, want UNAVAILABLE wrapping the digest mismatch", err)
	}
}

// waitUntil polls cond every millisecond until it holds, and fails the
// test, naming what it waited for, if d passes first.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A reader that arrives between a fill's commit and its done (the fill
// goroutine held up, here by c.mu) still honours its own context: follow
// returns when the client's 50 ms are up, not when the fill gets round to
// finishing. (It used to retry with context.Background, growing the stack.)
func TestFollowHonoursItsContextBetweenCommitAndDone(t *testing.T) {
	c, ns := newTestCache(t)
	data := bytes.Repeat([]byte("x"), 1<<20)
	dgst := dig(data)
	src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
		return &oci.RemoteBlob{Body: io.NopCloser(bytes.NewReader(data)), Size: int64(len(data))}, nil
	})
	c.mu.Lock() // stands in for contention on c.mu (startFill of other digests) or the fill goroutine being descheduled
	f := newFill(repo, dgst, src, ns.FillIdleTimeout)
	c.inflight[dgst] = f
	go c.runFill(context.Background(), f)
	waitUntil(t, 10*time.Second, "the fill's commit", func() bool { _, err := c.store.Stat(dgst); return err == nil })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ret := make(chan error, 1)
	go func() {
		b, err := c.follow(ctx, f, repo)
		if err == nil {
			b.Close()
		}
		ret <- err
	}()
	const hold = 3 * time.Second
	select {
	case <-ret: // in time, whatever it answered
		c.mu.Unlock()
	case <-time.After(hold):
		c.mu.Unlock()
		err := <-ret
		t.Errorf("follow ignored its 50 ms context for %v while the fill sat between commit and done; it returned %v once the fill could finish", hold, err)
	}
}
