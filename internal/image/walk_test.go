package image

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// memSource holds manifests by digest and referrers by subject.
type memSource struct {
	manifests map[string]oci.Manifest
	referrers map[string][]oci.Descriptor
}

func (s *memSource) Manifest(_ context.Context, d string) (oci.Manifest, error) {
	m, ok := s.manifests[d]
	if !ok {
		return oci.Manifest{}, fmt.Errorf("%s: not here", d)
	}
	return m, nil
}

func (s *memSource) Referrers(_ context.Context, d string) ([]oci.Descriptor, error) {
	return s.referrers[d], nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (s *memSource) put(t *testing.T, mediaType string, v any) oci.Manifest {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m := oci.Manifest{Descriptor: oci.Descriptor{MediaType: mediaType, Digest: digestOf(body), Size: int64(len(body))}, Body: body}
	s.manifests[m.Digest] = m
	return m
}

func blob(name string) map[string]any {
	return map[string]any{"mediaType": "application/octet-stream", "digest": digestOf([]byte(name)), "size": len(name)}
}

func (s *memSource) image(t *testing.T, config string, layers ...string) oci.Manifest {
	var ls []map[string]any
	for _, l := range layers {
		ls = append(ls, blob(l))
	}
	return s.put(t, oci.MediaTypeOCIManifest, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest, "config": blob(config), "layers": ls})
}

func entry(m oci.Manifest, platform map[string]string) map[string]any {
	e := map[string]any{"mediaType": m.MediaType, "digest": m.Digest, "size": m.Size}
	if platform != nil {
		e["platform"] = platform
	}
	return e
}

// fixture: an index of amd64, arm64/v8 and an attestation manifest
// (platform unknown/unknown); amd64 and arm64 share a layer; amd64 has a
// signature among its referrers.
func fixture(t *testing.T) (*memSource, map[string]string, oci.Manifest) {
	s := &memSource{manifests: map[string]oci.Manifest{}, referrers: map[string][]oci.Descriptor{}}
	amd := s.image(t, "cfg-amd", "base", "amd-top")
	arm := s.image(t, "cfg-arm", "base", "arm-top")
	att := s.image(t, "cfg-att", "sbom")
	sig := s.image(t, "cfg-sig", "sig-payload")
	s.referrers[amd.Digest] = []oci.Descriptor{sig.Descriptor}
	idx := s.put(t, oci.MediaTypeOCIIndex, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex, "manifests": []any{
		entry(amd, map[string]string{"os": "linux", "architecture": "amd64"}),
		entry(arm, map[string]string{"os": "linux", "architecture": "arm64", "variant": "v8"}),
		entry(att, map[string]string{"os": "unknown", "architecture": "unknown"}),
	}})
	names := map[string]string{idx.Digest: "index", amd.Digest: "amd", arm.Digest: "arm", att.Digest: "att", sig.Digest: "sig"}
	for _, b := range []string{"cfg-amd", "cfg-arm", "cfg-att", "cfg-sig", "base", "amd-top", "arm-top", "sbom", "sig-payload"} {
		names[digestOf([]byte(b))] = b
	}
	return s, names, idx
}

func walk(t *testing.T, s *memSource, names map[string]string, root oci.Manifest, opts Options) ([]string, error) {
	t.Helper()
	var order []string
	err := Walk(t.Context(), s, root, opts, func(n Node) error {
		order = append(order, names[n.Descriptor.Digest])
		return nil
	})
	return order, err
}

func TestWalkVisitsBlobsBeforeTheirManifestAndEachDigestOnce(t *testing.T) {
	s, names, idx := fixture(t)
	got, err := walk(t, s, names, idx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cfg-amd", "base", "amd-top", "amd", "cfg-arm", "arm-top", "arm", "cfg-att", "sbom", "att", "index"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v\nwant  %v", got, want)
	}
}

func TestWalkKeepsOnlyThePlatformsAskedForAndAttestations(t *testing.T) {
	s, names, idx := fixture(t)
	got, err := walk(t, s, names, idx, Options{Platforms: []string{"linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cfg-arm", "base", "arm-top", "arm", "cfg-att", "sbom", "att", "index"}
	if !slices.Equal(got, want) {
		t.Errorf("linux/arm64 (any variant): %v\nwant %v", got, want)
	}
	if _, err := walk(t, s, names, idx, Options{Platforms: []string{"arm64"}}); err == nil || !strings.Contains(err.Error(), "os/arch") {
		t.Errorf("a platform without an OS: %v, want an error naming os/arch", err)
	}
}

func TestWalkFollowsReferrersAfterTheirSubject(t *testing.T) {
	s, names, idx := fixture(t)
	got, err := walk(t, s, names, idx, Options{Platforms: []string{"linux/amd64"}, Referrers: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cfg-amd", "base", "amd-top", "amd", "cfg-sig", "sig-payload", "sig", "cfg-att", "sbom", "att", "index"}
	if !slices.Equal(got, want) {
		t.Errorf("with referrers: %v\nwant %v", got, want)
	}
}

func TestWalkFailsOnAMissingChildAndOnVisitErrors(t *testing.T) {
	s, names, idx := fixture(t)
	for d, n := range names {
		if n == "arm" {
			delete(s.manifests, d)
		}
	}
	if _, err := walk(t, s, names, idx, Options{}); err == nil || !strings.Contains(err.Error(), "not here") {
		t.Errorf("missing child: %v, want its error", err)
	}
	stop := errors.New("disk full")
	err := Walk(t.Context(), s, idx, Options{Platforms: []string{"linux/amd64"}}, func(n Node) error {
		if n.Kind == Blob {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("visit error: %v, want it returned", err)
	}
}

func TestWalkVisitsSHA512Blobs(t *testing.T) {
	s := &memSource{manifests: map[string]oci.Manifest{}, referrers: map[string][]oci.Descriptor{}}
	layer := sha512.Sum512([]byte("layer"))
	layerDigest := "sha512:" + hex.EncodeToString(layer[:])
	img := s.put(t, oci.MediaTypeOCIManifest, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
		"config": blob("cfg"),
		"layers": []any{map[string]any{"mediaType": "application/octet-stream", "digest": layerDigest, "size": 5}}})
	var got []oci.Descriptor
	err := Walk(t.Context(), s, img, Options{}, func(n Node) error {
		got = append(got, n.Descriptor)
		return nil
	})
	if err != nil {
		t.Fatalf("walking a manifest with a sha512 layer: %v", err)
	}
	want := []oci.Descriptor{{MediaType: "application/octet-stream", Digest: digestOf([]byte("cfg")), Size: 3},
		{MediaType: "application/octet-stream", Digest: layerDigest, Size: 5}, img.Descriptor}
	if !slices.Equal(got, want) {
		t.Errorf("visited %v\nwant    %v", got, want)
	}
}

func TestWalkRefusesAMalformedDigest(t *testing.T) {
	s := &memSource{manifests: map[string]oci.Manifest{}, referrers: map[string][]oci.Descriptor{}}
	img := s.put(t, oci.MediaTypeOCIManifest, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
		"config": blob("cfg"),
		"layers": []any{map[string]any{"mediaType": "application/octet-stream", "digest": "sha256:../../etc", "size": 5}}})
	idx := s.put(t, oci.MediaTypeOCIIndex, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex,
		"manifests": []any{map[string]any{"mediaType": oci.MediaTypeOCIManifest, "digest": "md5:abc", "size": 1}}})
	for _, root := range []oci.Manifest{img, idx} {
		err := Walk(t.Context(), s, root, Options{}, func(Node) error { return nil })
		if !errors.Is(err, ocierr.DigestInvalid) {
			t.Errorf("walking %s: %v, want DIGEST_INVALID", root.MediaType, err)
		}
	}
}

// An origin serving an endless chain of indexes stops the walk at MaxDepth
// with MANIFEST_INVALID instead of exhausting the stack.
func TestWalkStopsAtMaxDepth(t *testing.T) {
	s := &memSource{manifests: map[string]oci.Manifest{}, referrers: map[string][]oci.Descriptor{}}
	m := s.image(t, "cfg", "layer")
	for range MaxDepth + 2 {
		m = s.put(t, oci.MediaTypeOCIIndex, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex, "manifests": []any{entry(m, nil)}})
	}
	err := Walk(t.Context(), s, m, Options{}, func(Node) error { return nil })
	if !errors.Is(err, ocierr.ManifestInvalid) || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("a chain of %d indexes: %v, want MANIFEST_INVALID for depth", MaxDepth+2, err)
	}
}
