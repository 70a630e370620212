package cache_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	id, err := c.StartUpload(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadStatus(ctx, other, id); !errors.Is(err, ocierr.BlobUploadUnknown) {
		t.Errorf("status through another repository: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	if n, err := c.AppendUpload(ctx, app, id, 0, bytes.NewReader([]byte("hello "))); err != nil || n != 6 {
		t.Fatalf("append: %d, %v; want 6", n, err)
	}
	if n, err := c.AppendUpload(ctx, app, id, 3, bytes.NewReader([]byte("x"))); !errors.Is(err, ocierr.RangeInvalid) || n != 6 {
		t.Errorf("append at 3: %d, %v; want 6 and RANGE_INVALID", n, err)
	}
	if _, err := c.AppendUpload(ctx, app, id, 6, bytes.NewReader([]byte("world"))); err != nil {
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
	id, err := c.StartUpload(ctx, hosted("team/app"))
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
