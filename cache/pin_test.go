package cache_test

import (
	"testing"
	"time"

	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/route"
)

func rules(t *testing.T, raw ...string) []route.PinRule {
	t.Helper()
	var out []route.PinRule
	for _, r := range raw {
		p, err := route.ParsePinRule(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// An exact pin rule fetches its image whole (index, every platform, every
// blob) and keeps it through eviction; a glob pins tags as they arrive;
// unpinning makes content evictable again.
func TestPinsSurviveEviction(t *testing.T) {
	e := newEnv(t, nil,
		cache.WithLimit(cache.Limit{Max: 1, High: 0.5, Low: 0.25}), // evict everything evictable
		cache.WithPins(rules(t, "docker.io/library/multi:1.0", "docker.io/team/**")))
	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(e.o.srv.URL, "http://")+"/library/multi:1.0", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	e.o.push(t, "team/app", "v1", image(t))
	e.o.push(t, "other/app", "v1", image(t))

	if err := e.c.KeepPins(t.Context()); err != nil { // returns once everything is in place
		t.Fatal(err)
	}
	teamApp, err := e.manifest(t, "team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.manifest(t, "other/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := e.c.EnforceLimit(); err != nil {
		t.Fatal(err)
	}
	for _, d := range closureOf(t, idx) {
		if _, err := e.store.Stat(d); err != nil {
			t.Errorf("pinned %s: %v (evicted or never fetched)", d, err)
		}
	}
	if _, err := e.store.Stat(teamApp); err != nil {
		t.Errorf("glob-pinned team/app:v1 manifest %s evicted: %v", teamApp, err)
	}
	if _, err := e.store.Tag("docker.io", "team/app", "v1"); err != nil {
		t.Errorf("glob-pinned team/app:v1 tag dropped: %v", err)
	}
	// other/app was not pinned: its manifest went.
	if _, err := e.store.Tag("docker.io", "other/app", "v1"); err == nil {
		t.Errorf("unpinned other/app:v1 survived an eviction to zero")
	}
	if err := e.c.Unpin(t.Context(), "docker.io/library/multi:1.0", "config:docker.io/library/multi:1.0"); err != nil {
		t.Fatal(err)
	}
	if err := e.c.EnforceLimit(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Stat(mustDigestOf(t, idx)); err == nil {
		t.Errorf("the index survived eviction after unpinning")
	}
}

func mustDigestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestPinPlatformsLimitWhatIsFetched(t *testing.T) {
	// The pinned platform's layer is large enough (5 MiB) that its reader
	// is released before the commit's fsync: the pin must still wait for
	// the blob to be stored.
	amd, err := random.Image(5<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	arm := image(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	e := newEnv(t, nil, cache.WithPins(rules(t, "docker.io/library/multi:1.0"), "linux/amd64"))
	ref, _ := name.ParseReference(strings.TrimPrefix(e.o.srv.URL, "http://")+"/library/multi:1.0", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	if err := e.c.KeepPins(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, img := range []struct {
		v1.Image
		want bool
	}{{amd, true}, {arm, false}} {
		d := mustDigestOf(t, img.Image)
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		for _, dg := range []string{d, ld.String()} {
			if _, err := e.store.Stat(dg); (err == nil) != img.want {
				t.Errorf("%s held: %v, want %v", dg, err == nil, img.want)
			}
		}
	}
}

// A rule-pinned tag that moves upstream releases its old image: the rule's
// pin ("config:<rule>") follows the tag, so the previous digest becomes
// evictable and the budget can hold. (Every revision a pinned tag ever had
// used to stay pinned.)
func TestRulePinReleasesTheDigestATagMovedFrom(t *testing.T) {
	e := newEnv(t, nil, cache.WithLimit(cache.Limit{Max: 1, High: 0.5, Low: 0.25}),
		cache.WithPins(rules(t, "docker.io/library/a:v1")))
	old := e.o.push(t, "library/a", "v1", image(t))
	if _, err := e.manifest(t, "library/a", "v1"); err != nil {
		t.Fatal(err)
	}
	if pinned, _ := e.store.Pinned(old); !pinned {
		t.Fatalf("the rule's tag %s is not pinned before it moves, so nothing below is tested", old)
	}
	moved := e.o.push(t, "library/a", "v1", image(t))
	e.clock.Add(2 * time.Minute)
	if d, err := e.manifest(t, "library/a", "v1"); err != nil || d != moved {
		t.Fatalf("after the move: %s %v, want %s", d, err, moved)
	}
	if err := e.c.EnforceLimit(); err != nil {
		t.Fatal(err)
	}
	if pinned, _ := e.store.Pinned(old); pinned {
		t.Errorf("the tag's previous digest %s is still pinned by the rule after the tag moved", old)
	}
	if pinned, _ := e.store.Pinned(moved); !pinned {
		t.Errorf("the tag's new digest %s is not pinned by the rule", moved)
	}
}

// `cairn cache pin` (Cache.Pin) fetches the image whole, as its help says:
// the index, every child, every config and layer, all pinned.
func TestPinFetchesTheWholeImage(t *testing.T) {
	amd, arm := image(t), image(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	e := newEnv(t, nil)
	ref, _ := name.ParseReference(strings.TrimPrefix(e.o.srv.URL, "http://")+"/library/whole:1.0", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Pin(t.Context(), "docker.io/library/whole:1.0", "cli"); err != nil {
		t.Fatal(err)
	}
	for _, d := range closureOf(t, idx) {
		if _, err := e.store.Stat(d); err != nil {
			t.Errorf("%s not held after the pin: %v", d, err)
			continue
		}
		if reasons, err := e.store.PinReasons(d); err != nil || len(reasons) != 1 || reasons[0] != "cli" {
			t.Errorf("%s pin reasons %v, %v; want [cli]", d, reasons, err)
		}
	}
}

// closureOf is every digest of idx: the index, each child, its config and
// its layers.
func closureOf(t *testing.T, idx v1.ImageIndex) []string {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{mustDigestOf(t, idx)}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.ConfigName()
		out = append(out, m.Digest.String(), cfg.String())
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			out = append(out, d.String())
		}
	}
	return out
}
