package cache_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// hostedCache is a cache with one hosted namespace, registry.internal,
// under a clock set to now.
func hostedCache(t *testing.T) (*cache.Cache, *clock) {
	t.Helper()
	clk := &clock{now: time.Now()}
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ns := cache.Namespace{Name: "registry.internal", TagTTL: time.Minute, FillIdleTimeout: time.Minute}
	c, err := cache.New(store, []cache.Namespace{ns}, cache.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func hosted(name string) route.Repo {
	return route.Repo{Namespace: "registry.internal", Name: name, Sent: "registry.internal/" + name}
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

// An upload belongs to its repository, checks offsets, and is readable
// in that repository once committed.
func TestUploadSessionLifecycle(t *testing.T) {
	c, _ := hostedCache(t)
	ctx := t.Context()
	app, other := hosted("team/app"), hosted("team/other")
	id, err := c.StartUpload(ctx, app, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadStatus(ctx, other, id); !errors.Is(err, ocierr.BlobUploadUnknown) {
		t.Errorf("status through another repository: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	if n, err := c.AppendUpload(ctx, app, id, 0, -1, bytes.NewReader([]byte("hello "))); err != nil || n != 6 {
		t.Fatalf("append: %d, %v; want 6", n, err)
	}
	if n, err := c.AppendUpload(ctx, app, id, 3, -1, bytes.NewReader([]byte("x"))); !errors.Is(err, ocierr.RangeInvalid) || n != 6 {
		t.Errorf("append at 3: %d, %v; want 6 and RANGE_INVALID", n, err)
	}
	if _, err := c.AppendUpload(ctx, app, id, 6, -1, bytes.NewReader([]byte("world"))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CommitUpload(ctx, app, id, sha([]byte("nope"))); !errors.Is(err, ocierr.DigestInvalid) {
		t.Errorf("commit with a wrong digest: %v, want DIGEST_INVALID", err)
	}
	want := []byte("hello world")
	d, err := c.CommitUpload(ctx, app, id, sha(want))
	if err != nil || d.Size != int64(len(want)) {
		t.Fatalf("commit: %+v, %v", d, err)
	}
	if _, err := c.StatBlob(ctx, app, sha(want)); err != nil {
		t.Errorf("the pushed blob in its repository: %v", err)
	}
	if _, err := c.StatBlob(ctx, other, sha(want)); !errors.Is(err, ocierr.BlobUnknown) {
		t.Errorf("the pushed blob in another repository: %v, want BLOB_UNKNOWN", err)
	}
	if _, err := c.MountBlob(ctx, other, app, sha(want)); err != nil {
		t.Errorf("mount: %v", err)
	}
	if _, err := c.StatBlob(ctx, other, sha(want)); err != nil {
		t.Errorf("the mounted blob: %v", err)
	}
}

func TestIdleUploadsExpire(t *testing.T) {
	c, clk := hostedCache(t)
	ctx := t.Context()
	id, err := c.StartUpload(ctx, hosted("team/app"), "")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.ExpireUploads(); err != nil || n != 0 {
		t.Fatalf("a fresh session: expired %d, %v; want 0", n, err)
	}
	clk.Add(cache.DefaultUploadExpiry + time.Minute)
	if n, err := c.ExpireUploads(); err != nil || n != 1 {
		t.Fatalf("an idle session: expired %d, %v; want 1", n, err)
	}
	if _, err := c.UploadStatus(ctx, hosted("team/app"), id); !errors.Is(err, ocierr.BlobUploadUnknown) {
		t.Errorf("status of an expired session: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
}

// limitedCache is a cache with one hosted namespace, registry.internal,
// under upload limits lim; it returns the store's data directory too.
func limitedCache(t *testing.T, lim cache.UploadLimits) (*cache.Cache, *storage.Store, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ns := cache.Namespace{Name: "registry.internal", TagTTL: time.Minute, FillIdleTimeout: time.Minute}
	c, err := cache.New(store, []cache.Namespace{ns}, cache.WithUploadLimits(lim))
	if err != nil {
		t.Fatal(err)
	}
	return c, store, dir
}

// checkSessionGone asserts that session id has ended and left no file.
func checkSessionGone(t *testing.T, c *cache.Cache, store *storage.Store, dir, id string) {
	t.Helper()
	if _, err := c.UploadStatus(t.Context(), hosted("team/app"), id); !errors.Is(err, ocierr.BlobUploadUnknown) {
		t.Errorf("status of the session: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	if total, _ := store.UploadSessions(""); total != 0 {
		t.Errorf("%d sessions open, want none", total)
	}
	if left, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(left) != 0 {
		t.Errorf("tmp/ holds %d entries (%v), want none", len(left), err)
	}
}

// checkTooLarge asserts the refusal of an upload past the size cap.
func checkTooLarge(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ocierr.SizeInvalid) || ocierr.StatusOf(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("%s: %v (status %d), want SIZE_INVALID with 413", what, err, ocierr.StatusOf(err))
	}
}

// Chunks up to the cap are taken; the one whose bytes pass it ends the
// session, keeping nothing on disk.
func TestUploadChunksPastMaxSizeEndSession(t *testing.T) {
	c, store, dir := limitedCache(t, cache.UploadLimits{MaxSize: 10})
	ctx, app := t.Context(), hosted("team/app")
	id, err := c.StartUpload(ctx, app, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.AppendUpload(ctx, app, id, 0, -1, bytes.NewReader([]byte("0123456"))); err != nil || n != 7 {
		t.Fatalf("a chunk under the cap: %d, %v", n, err)
	}
	_, err = c.AppendUpload(ctx, app, id, 7, -1, bytes.NewReader([]byte("789A")))
	checkTooLarge(t, "a streamed chunk past the cap", err)
	checkSessionGone(t, c, store, dir, id)

	id, err = c.StartUpload(ctx, app, "alice")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("0123456789")
	if n, err := c.AppendUpload(ctx, app, id, 0, int64(len(body)), bytes.NewReader(body)); err != nil || n != 10 {
		t.Fatalf("a blob of exactly the cap: %d, %v", n, err)
	}
	if _, err := c.CommitUpload(ctx, app, id, sha(body)); err != nil {
		t.Fatalf("commit of a blob of exactly the cap: %v", err)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A body whose declared length passes the cap is refused unread.
func TestUploadDeclaredPastMaxSizeRefusedUnread(t *testing.T) {
	c, store, dir := limitedCache(t, cache.UploadLimits{MaxSize: 10})
	ctx, app := t.Context(), hosted("team/app")
	id, err := c.StartUpload(ctx, app, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendUpload(ctx, app, id, 0, 4, bytes.NewReader([]byte("0123"))); err != nil {
		t.Fatal(err)
	}
	body := &countingReader{r: bytes.NewReader([]byte("4567890"))}
	_, err = c.AppendUpload(ctx, app, id, 4, 7, body)
	checkTooLarge(t, "a chunk declared past the cap", err)
	if body.n != 0 {
		t.Errorf("%d bytes of the refused body were read, want none", body.n)
	}
	checkSessionGone(t, c, store, dir, id)
}

// Past the node's or a user's session cap a new upload is TOOMANYREQUESTS
// and creates nothing; an ended session makes room again.
func TestUploadSessionCaps(t *testing.T) {
	c, store, dir := limitedCache(t, cache.UploadLimits{Sessions: 3, SessionsPerUser: 2})
	ctx, app := t.Context(), hosted("team/app")
	start := func(user string) (string, error) { return c.StartUpload(ctx, app, user) }
	a1, err := start("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := start("alice"); !errors.Is(err, ocierr.TooManyRequests) {
		t.Errorf("alice's third session: %v, want TOOMANYREQUESTS", err)
	}
	if _, err := start("bob"); err != nil {
		t.Fatalf("bob's first session: %v", err)
	}
	if _, err := start("carol"); !errors.Is(err, ocierr.TooManyRequests) {
		t.Errorf("a fourth session on the node: %v, want TOOMANYREQUESTS", err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 3 {
		t.Errorf("tmp/ holds %d files, want the 3 sessions'", len(left))
	}
	if err := c.CancelUpload(ctx, app, a1); err != nil {
		t.Fatal(err)
	}
	if _, err := start("carol"); err != nil {
		t.Errorf("carol's session once alice's ended: %v", err)
	}
	if total, _ := store.UploadSessions(""); total != 3 {
		t.Errorf("%d sessions open, want 3", total)
	}
}
