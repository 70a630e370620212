package benchmarks

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BenchmarkManifestByTag serves a tag inside its TTL through the API
// handler (no network): the per-request cost of the tag hit path.
func BenchmarkManifestByTag(b *testing.B) {
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(up.Close)
	img, err := random.Image(1024, 2)
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(up.URL, "http://")+"/library/bench:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	s := newStackOver(b, up.URL)
	path := "/v2/library/bench/manifests/v1"
	warm(b, s.srv.URL+path)
	req := httptest.NewRequest("GET", path, nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.handler.ServeHTTP(w, req)
	}
}
