package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/cache"
)

// readBlob reads a whole blob through the cache.
func (e *env) readBlob(t *testing.T, r string, l v1.Layer) error {
	t.Helper()
	d, _ := l.Digest()
	b, err := e.c.OpenBlob(t.Context(), repo(r), d.String())
	if err != nil {
		return err
	}
	defer b.Close()
	var buf bytes.Buffer
	if _, err := b.WriteRange(context.Background(), &buf, 0, b.Size()); err != nil {
		return err
	}
	want := mustBytes(t, l)
	if !bytes.Equal(buf.Bytes(), want) {
		return fmt.Errorf("blob %s: wrong bytes", d)
	}
	return nil
}

func mustBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	b.ReadFrom(rc)
	return b.Bytes()
}

// Under a budget of a few blobs, clients pull many: every pull is whole,
// the budget holds after each enforcement (within one blob), and a blob
// being read survives eviction.
func TestEvictionKeepsTheBudget(t *testing.T) {
	const layerSize = 64 << 10
	limit := cache.Limit{Max: 5 * layerSize, High: 0.9, Low: 0.6}
	e := newEnv(t, nil, cache.WithLimit(limit))
	img, err := random.Image(layerSize, 12)
	if err != nil {
		t.Fatal(err)
	}
	e.o.push(t, "library/big", "v1", img)
	layers, _ := img.Layers()

	held, _ := layers[0].Digest()
	open, err := e.c.OpenBlob(t.Context(), repo("library/big"), held.String())
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for i, l := range layers {
			if err := e.readBlob(t, "library/big", l); err != nil {
				t.Fatalf("round %d, layer %d: %v", round, i, err)
			}
			if err := e.c.EnforceLimit(); err != nil {
				t.Fatal(err)
			}
			used, _ := e.store.Usage()
			if used > limit.Max+layerSize+layerSize/4 {
				t.Fatalf("round %d, layer %d: %d bytes used, budget %d", round, i, used, limit.Max)
			}
		}
	}
	if _, err := e.store.Stat(held.String()); err != nil {
		t.Errorf("the blob held open was evicted: %v", err)
	}
	var buf bytes.Buffer
	if _, err := open.WriteRange(context.Background(), &buf, 0, open.Size()); err != nil || !bytes.Equal(buf.Bytes(), mustBytes(t, layers[0])) {
		t.Errorf("reading the held blob after evictions: %v", err)
	}
	open.Close()
	if gets := e.o.count("GET /blobs/"); gets <= len(layers) {
		t.Errorf("upstream blob GETs %d: eviction never forced a refetch (the test proves nothing)", gets)
	}
}

// Evicting layers that a cached manifest still names is allowed (they are
// fetched again on demand) but counted.
func TestEvictedLayersStillNamedAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, nil, cache.WithLimit(cache.Limit{Max: 1, High: 0.5, Low: 0.25}), cache.WithRegisterer(reg))
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	e.o.push(t, "library/a", "v1", img)
	m, err := e.c.Manifest(t.Context(), repo("library/a"), "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Pin(m.Digest, "test"); err != nil { // the manifest only, not its layers
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		if err := e.readBlob(t, "library/a", l); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.c.EnforceLimit(); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, reg, "cairn_storage_evicted_still_named_total"); got != 3 {
		t.Errorf("evicted layers still named: %v, want 3", got)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
