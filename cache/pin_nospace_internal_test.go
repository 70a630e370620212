package cache

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cairn-mirror/cairn/internal/testdisk"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

// A pin's fetch must not count a blob that was read but not stored. When
// no temp file can be created (a tmpfs without free inodes over tmp/),
// the fill ends with no space and its reader goes uncached: the pin must
// fail, to be tried again, rather than count the image in place.
// (fetchBlob once returned nil here.)
func TestPinFetchOfAnUncachedReadFails(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	layer, err := random.Layer(64<<10, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/library/x", name.Insecure)
	if err := remote.WriteLayer(r, layer); err != nil {
		t.Fatal(err)
	}
	ld, _ := layer.Digest()
	dgst := ld.String()

	dir := t.TempDir()
	st, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tmp := filepath.Join(dir, "tmp")
	testdisk.Mount(t, tmp, "size=1m,nr_inodes=1")
	if f, err := os.CreateTemp(tmp, "probe-*"); err == nil {
		f.Close()
		t.Skipf("the tmpfs still takes files (%s): cannot fake a full disk here", f.Name())
	}
	client, err := upstream.New("docker.io", srv.URL, upstream.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(st, []Namespace{{Name: "docker.io", Origin: client, TagTTL: time.Minute,
		FillIdleTimeout: 5 * time.Second, HeadTimeout: time.Second, RequestTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.fetchBlob(ctx, repo, dgst)
	_, statErr := st.Stat(dgst)
	if err == nil && statErr != nil {
		t.Errorf("fetchBlob (pin prefetch) returned nil, but the blob is not stored (Stat: %v): the pin counts it in place and is not retried", statErr)
	}
}
