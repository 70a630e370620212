package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func sha256Of(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func sha512Of(s string) string {
	sum := sha512.Sum512([]byte(s))
	return "sha512:" + hex.EncodeToString(sum[:])
}

// typicalManifest is an image manifest the size of a common one: a config,
// six layers, a subject and an annotation.
func typicalManifest(tb testing.TB) []byte {
	tb.Helper()
	layers := make([]any, 6)
	for i := range layers {
		layers[i] = map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256Of(fmt.Sprint("layer", i)), "size": 31457280 + i}
	}
	return mustJSON(tb, map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
		"config":      map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256Of("config"), "size": 1469},
		"layers":      layers,
		"subject":     map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha256Of("subject"), "size": 1024},
		"annotations": map[string]string{"org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
	})
}

// typicalIndex is an index of six platforms and an attestation manifest.
func typicalIndex(tb testing.TB) []byte {
	tb.Helper()
	var children []any
	for _, arch := range []string{"amd64", "arm64", "arm", "ppc64le", "s390x", "386"} {
		children = append(children, map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha256Of(arch), "size": 1024,
			"platform": map[string]string{"os": "linux", "architecture": arch}})
	}
	children = append(children, map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha256Of("att"), "size": 840,
		"platform": map[string]string{"os": "unknown", "architecture": "unknown"}})
	return mustJSON(tb, map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex, "manifests": children})
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseNamesConfigLayersChildrenAndSubjectWhateverTheAlgorithm(t *testing.T) {
	body := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
		"config":  map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256Of("cfg"), "size": 3},
		"layers":  []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha512Of("layer"), "size": 5}},
		"subject": map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha512Of("subject"), "size": 7},
	})
	p, err := Parse(body)
	if err != nil {
		t.Fatalf("Parse with a sha512 layer: %v", err)
	}
	want := []string{sha256Of("cfg"), sha512Of("layer"), sha512Of("subject")}
	if got := p.Names(); !slices.Equal(got, want) {
		t.Errorf("Names %v, want %v", got, want)
	}
	if got := p.SubjectDigest(); got != sha512Of("subject") {
		t.Errorf("SubjectDigest %s, want %s", got, sha512Of("subject"))
	}
	if got := p.Blobs(); len(got) != 2 || got[1].Size != 5 {
		t.Errorf("Blobs %v, want the config and the one layer", got)
	}
}

func TestParseIndexHasNoBlobsAndNamesItsChildren(t *testing.T) {
	p, err := Parse(typicalIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blobs()) != 0 {
		t.Errorf("an index's Blobs: %v, want none", p.Blobs())
	}
	if got := len(p.Names()); got != 7 {
		t.Errorf("an index of 7 children names %d digests", got)
	}
	if p.MediaType != MediaTypeOCIIndex || p.SchemaVersion != 2 {
		t.Errorf("mediaType %q schemaVersion %d, want %s 2", p.MediaType, p.SchemaVersion, MediaTypeOCIIndex)
	}
}

func TestParseRefusesWhatIsNotAManifestObject(t *testing.T) {
	for _, body := range []string{"", "[]", `{"layers":"x"}`, `{"config":{"size":"big"}}`, "{"} {
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("Parse(%q): no error", body)
		}
	}
}

func TestChildForMatchesOSArchAndAnyVariantUnlessOneIsAsked(t *testing.T) {
	body := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex, "manifests": []any{
		map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha256Of("att"), "size": 1},
		map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha256Of("v7"), "size": 1, "platform": map[string]string{"os": "linux", "architecture": "arm", "variant": "v7"}},
		map[string]any{"mediaType": MediaTypeOCIManifest, "digest": sha256Of("v6"), "size": 1, "platform": map[string]string{"os": "linux", "architecture": "arm", "variant": "v6"}},
	}})
	p, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ platform, want string }{
		{"linux/arm", sha256Of("v7")},
		{"linux/arm/v6", sha256Of("v6")},
		{"linux/amd64", ""},
		{"windows/arm", ""},
	} {
		want, err := ParsePlatform(c.platform)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := p.ChildFor(want)
		if d.Digest != c.want || ok != (c.want != "") {
			t.Errorf("ChildFor(%s) = %s, %v; want %q", c.platform, d.Digest, ok, c.want)
		}
	}
}

func TestParsePlatformWantsOSAndArch(t *testing.T) {
	for _, s := range []string{"", "amd64", "linux/", "/amd64"} {
		if _, err := ParsePlatform(s); err == nil || !strings.Contains(err.Error(), "os/arch") {
			t.Errorf("ParsePlatform(%q): %v, want an error naming os/arch", s, err)
		}
	}
	p, err := ParsePlatform("linux/arm64/v8")
	if err != nil || p.OS != "linux" || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("ParsePlatform(linux/arm64/v8) = %+v, %v", p, err)
	}
}

func TestDigestOfUsesTheAlgorithmAskedForAndSHA256Otherwise(t *testing.T) {
	for _, c := range []struct{ alg, want string }{
		{"sha512", sha512Of("body")},
		{"sha256", sha256Of("body")},
		{"", sha256Of("body")},
	} {
		if got := DigestOf([]byte("body"), c.alg); got != c.want {
			t.Errorf("DigestOf(%q) = %s, want %s", c.alg, got, c.want)
		}
	}
}

func BenchmarkParseManifest(b *testing.B) {
	body := typicalManifest(b)
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseIndex(b *testing.B) {
	body := typicalIndex(b)
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDigestOfSHA256(b *testing.B) {
	body := typicalManifest(b)
	for b.Loop() {
		_ = DigestOf(body, "sha256")
	}
}

func BenchmarkDigestOfSHA512(b *testing.B) {
	body := typicalManifest(b)
	for b.Loop() {
		_ = DigestOf(body, "sha512")
	}
}
