package cache_test

import (
	"testing"

	"github.com/cairn-mirror/cairn/internal/oci"
)

// A tag pointing at an image manifest (no index), asked for by a client
// whose Accept lacks an index type, is recorded: later pulls inside the
// tag's TTL are served from the cache without a GET by tag (which Docker
// Hub counts). (The record used to be skipped for such clients.)
func TestImageTagFetchedWithNarrowAcceptIsRecorded(t *testing.T) {
	e := newEnv(t, nil)
	want := e.o.push(t, "library/a", "v1", image(t))
	accept := []string{oci.MediaTypeDockerManifest, oci.MediaTypeOCIManifest}
	for i := range 3 {
		m, err := e.c.Manifest(t.Context(), repo("library/a"), "v1", accept)
		if err != nil {
			t.Fatal(err)
		}
		if m.Digest != want {
			t.Fatalf("pull %d: %s, want %s", i, m.Digest, want)
		}
	}
	if g := e.o.count("GET /manifests/"); g != 1 {
		t.Errorf("3 pulls of a fresh tag inside its TTL: %d upstream GETs, want 1", g)
	}
	if tag, err := e.store.Tag("docker.io", "library/a", "v1"); err != nil {
		t.Errorf("tag record: %v", err)
	} else if tag.Digest != want {
		t.Errorf("tag record points at %s, want %s", tag.Digest, want)
	}
}
