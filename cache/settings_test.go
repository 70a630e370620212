package cache_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/cache"
)

// A new tag TTL applies to the next request: a tag inside the old TTL but
// past the new one is revalidated (one HEAD), and requests running while
// the settings change see one or the other, never a torn mix (-race).
func TestUpdateNamespacesChangesTagTTL(t *testing.T) {
	e := newEnv(t, nil) // TTL one minute
	d := e.o.push(t, "library/a", "v1", image(t))
	if got, err := e.manifest(t, "library/a", "v1"); err != nil || got != d {
		t.Fatalf("cold: %s, %v", got, err)
	}
	e.clock.Add(30 * time.Second)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	reads := make(chan struct{}, 1<<10)
	wg.Add(1)
	go func() { // readers while the settings change
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := e.c.Manifest(t.Context(), repo("library/a"), "v1", nil); err != nil {
					t.Error(err)
					return
				}
				select {
				case reads <- struct{}{}:
				default:
				}
			}
		}
	}()
	awaitReads := func(n int) { // the reader really runs beside the update
		deadline := time.After(10 * time.Second)
		for range n {
			select {
			case <-reads:
			case <-deadline:
				t.Fatalf("the reader made fewer than %d reads in 10 s", n)
			}
		}
	}
	awaitReads(5)
	nss := e.c.Namespaces()
	nss[0].TagTTL = 10 * time.Second
	if err := e.c.UpdateNamespaces(nss); err != nil {
		t.Fatal(err)
	}
	awaitReads(5)
	close(stop)
	wg.Wait()

	for range 2 { // after the update: the first revalidates, the second finds it fresh
		if got, err := e.manifest(t, "library/a", "v1"); err != nil || got != d {
			t.Fatalf("after the update: %s, %v", got, err)
		}
	}
	if got := e.c.Namespaces()[0].TagTTL; got != 10*time.Second {
		t.Errorf("Namespaces after the update: tag TTL %v, want 10s", got)
	}
	if heads := e.o.count("HEAD /manifests/"); heads != 1 {
		t.Errorf("30 s into a 1 min TTL cut to 10 s: %d HEADs, want exactly 1 (revalidated once, then fresh for 10 s)", heads)
	}
}

// What a namespace is cannot change while the cache runs: an update that
// adds, drops or turns one into another kind is refused whole, naming
// every problem, and the settings stay.
func TestUpdateNamespacesRefusesWhatNeedsARestart(t *testing.T) {
	e := newEnv(t, nil)
	ok := e.c.Namespaces()[0]
	private, hosted, added, noTTL := ok, ok, ok, ok
	private.Private = true
	hosted.Origin = nil
	added.Name = "ghcr.io"
	noTTL.TagTTL = 0
	tests := []struct {
		name string
		nss  []cache.Namespace
		want []string
	}{
		{"credentials on", []cache.Namespace{private}, []string{"uses credentials"}},
		{"mirror to hosted", []cache.Namespace{hosted}, []string{"mirror cannot become hosted"}},
		{"added and removed", []cache.Namespace{added}, []string{`"ghcr.io" is not configured`, `"docker.io" missing`}},
		{"no TTL, twice", []cache.Namespace{noTTL, ok}, []string{"tag TTL", "given twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.c.UpdateNamespaces(tt.nss)
			if err == nil {
				t.Fatal("update accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := e.c.Namespaces(); len(got) != 1 || got[0].TagTTL != ok.TagTTL {
				t.Errorf("after a refused update: %+v, want the settings unchanged", got)
			}
		})
	}
}
