package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cairn-mirror/cairn/internal/config"
)

const (
	ociManifest  = "application/vnd.oci.image.manifest.v1+json"
	sigType      = "application/vnd.example.signature.v1"
	sbomType     = "application/vnd.example.sbom.v1"
	emptyIndex   = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`
	emptyDigest  = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" // of "{}"
	filtersFound = "artifactType"
)

// refDesc is a descriptor in a referrers index.
type refDesc struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type refIndex struct {
	SchemaVersion int       `json:"schemaVersion"`
	MediaType     string    `json:"mediaType"`
	Manifests     []refDesc `json:"manifests"`
}

// putManifest PUTs body as a manifest at repo:ref on the upstream.
func (u *counting) putManifest(t *testing.T, repo, ref, mediaType string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u.srv.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s:%s: status %d", repo, ref, resp.StatusCode)
	}
}

// pushArtifact pushes an artifact manifest whose subject is img to repo
// and returns its descriptor. Its config media type is the artifact type
// too, as go-containerregistry's referrers API reads it from there.
func (u *counting) pushArtifact(t *testing.T, repo string, img v1.Image, artifactType string) refDesc {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	annotations := map[string]string{"org.example.kind": artifactType}
	m, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"artifactType":  artifactType,
		"config":        refDesc{MediaType: artifactType, Digest: emptyDigest, Size: 2},
		"layers":        []refDesc{{MediaType: "application/vnd.oci.empty.v1+json", Digest: emptyDigest, Size: 2}},
		"subject":       refDesc{MediaType: string(mt), Digest: digestOf(raw), Size: int64(len(raw))},
		"annotations":   annotations,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := refDesc{MediaType: ociManifest, Digest: digestOf(m), Size: int64(len(m)), ArtifactType: artifactType, Annotations: annotations}
	u.putManifest(t, repo, d.Digest, ociManifest, m)
	return d
}

// pushReferrersTag writes the referrers tag schema's index (the tag
// sha256-<hex>), as clients do for registries without the referrers API.
func (u *counting) pushReferrersTag(t *testing.T, repo, subject string, descs ...refDesc) {
	t.Helper()
	idx, err := json.Marshal(refIndex{SchemaVersion: 2, MediaType: ociIndex, Manifests: descs})
	if err != nil {
		t.Fatal(err)
	}
	u.putManifest(t, repo, strings.Replace(subject, ":", "-", 1), ociIndex, idx)
}

// referrers GETs the referrers of dgst and decodes the answer.
func referrers(t *testing.T, n *node, path string) (*http.Response, refIndex, []byte) {
	t.Helper()
	resp, body := get(t, "GET", n.url(path))
	var idx refIndex
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != ociIndex {
			t.Errorf("GET %s: Content-Type %q, want %q", path, ct, ociIndex)
		}
		if err := json.Unmarshal(body, &idx); err != nil || idx.SchemaVersion != 2 || idx.MediaType != ociIndex || idx.Manifests == nil {
			t.Errorf("GET %s: body %s is not an OCI index (%v)", path, body, err)
		}
	}
	return resp, idx, body
}

// assertReferrers checks the status, the digests (in any order) and the
// OCI-Filters-Applied header of a referrers answer.
func assertReferrers(t *testing.T, what string, resp *http.Response, idx refIndex, filtered bool, want ...refDesc) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: status %d, want 200", what, resp.StatusCode)
		return
	}
	var got, wantDigests []string
	for _, d := range idx.Manifests {
		got = append(got, d.Digest)
	}
	for _, d := range want {
		wantDigests = append(wantDigests, d.Digest)
	}
	slices.Sort(got)
	slices.Sort(wantDigests)
	if !slices.Equal(got, wantDigests) {
		t.Errorf("%s: referrers %v, want %v", what, got, wantDigests)
	}
	for _, d := range idx.Manifests {
		for _, w := range want {
			if d.Digest == w.Digest && (d.ArtifactType != w.ArtifactType || d.Size != w.Size || d.MediaType != w.MediaType || d.Annotations["org.example.kind"] != w.ArtifactType) {
				t.Errorf("%s: descriptor %+v, want %+v", what, d, w)
			}
		}
	}
	wantHdr := ""
	if filtered {
		wantHdr = filtersFound
	}
	if got := resp.Header.Get("OCI-Filters-Applied"); got != wantHdr {
		t.Errorf("%s: OCI-Filters-Applied %q, want %q", what, got, wantHdr)
	}
}

// An upstream without the referrers API (go-containerregistry's registry,
// like distribution 2.8) is read through the referrers tag schema.
func TestReferrersTagFallback(t *testing.T) {
	f := newFixture(t)
	subject := mustDigest(t, f.img)
	sig := f.docker.pushArtifact(t, "library/alpine", f.img, sigType)
	sbom := f.docker.pushArtifact(t, "library/alpine", f.img, sbomType)
	f.docker.pushReferrersTag(t, "library/alpine", subject, sig, sbom)
	f.docker.reset()
	path := "/v2/library/alpine/referrers/" + subject
	tag := strings.Replace(subject, ":", "-", 1)

	resp, idx, body := referrers(t, f.node, path)
	assertReferrers(t, "all", resp, idx, false, sig, sbom)
	if n := f.docker.count("GET", "/referrers/"+subject); n != 1 {
		t.Errorf("upstream referrers GETs %d, want 1 (it answers 404: no API)", n)
	}
	if n := f.docker.count("GET", "/manifests/"+tag); n != 1 {
		t.Errorf("upstream GETs of the referrers tag %d, want 1", n)
	}
	resp, idx, _ = referrers(t, f.node, path+"?artifactType="+sigType)
	assertReferrers(t, "artifactType filter", resp, idx, true, sig)

	hresp, hbody := get(t, "HEAD", f.node.url(path))
	if hresp.StatusCode != 200 || len(hbody) != 0 || hresp.ContentLength != int64(len(body)) || hresp.Header.Get("Content-Type") != ociIndex {
		t.Errorf("HEAD: status %d, %d body bytes, length %d, type %q; want 200, 0, %d, the index type",
			hresp.StatusCode, len(hbody), hresp.ContentLength, hresp.Header.Get("Content-Type"), len(body))
	}
	before := f.docker.count("GET", "") + f.docker.count("HEAD", "")
	if resp, _, again := referrers(t, f.node, path); resp.StatusCode != 200 || !bytes.Equal(again, body) {
		t.Errorf("repeat GET: status %d, body %s, want the first answer", resp.StatusCode, again)
	}
	if after := f.docker.count("GET", "") + f.docker.count("HEAD", ""); after != before {
		t.Errorf("upstream requests went from %d to %d within tag_ttl, want no new ones", before, after)
	}

	layers, _ := f.img.Layers()
	none := mustDigest(t, layers[0])
	resp, _, body = referrers(t, f.node, "/v2/library/alpine/referrers/"+none)
	if resp.StatusCode != 200 || string(body) != emptyIndex || resp.Header.Get("OCI-Filters-Applied") != "" {
		t.Errorf("no referrers: status %d, body %s; want 200 and %s", resp.StatusCode, body, emptyIndex)
	}

	f.docker.srv.Close()
	resp, idx, _ = referrers(t, f.node, path)
	assertReferrers(t, "upstream down, answer cached", resp, idx, false, sig, sbom)
	// Never asked with this filter: answered from the referrers tag held.
	resp, idx, _ = referrers(t, f.node, path+"?artifactType="+sbomType)
	assertReferrers(t, "upstream down, tag held", resp, idx, true, sbom)
	resp, _, body = referrers(t, f.node, "/v2/library/alpine/referrers/sha256:"+strings.Repeat("0", 64))
	if resp.StatusCode != 503 {
		t.Errorf("upstream down, nothing held: status %d, want 503", resp.StatusCode)
	}
	assertOCIError(t, "upstream down, nothing held", body, "UNAVAILABLE")
}

func TestReferrersRouting(t *testing.T) {
	f := newFixture(t)
	subject := mustDigest(t, f.img)
	resp, _, body := referrers(t, f.node, "/v2/registry.internal/team/app/referrers/"+subject)
	if resp.StatusCode != 200 || string(body) != emptyIndex || resp.Header.Get("OCI-Namespace") != "registry.internal" {
		t.Errorf("hosted: status %d, namespace %q, body %s; want 200, registry.internal, the empty index",
			resp.StatusCode, resp.Header.Get("OCI-Namespace"), body)
	}
	resp, body = get(t, "GET", f.node.url("/v2/library/alpine/referrers/sha256:abc"))
	if resp.StatusCode != 400 {
		t.Errorf("malformed digest: status %d, want 400", resp.StatusCode)
	}
	assertOCIError(t, "malformed digest", body, "DIGEST_INVALID")
	resp, body = get(t, "DELETE", f.node.url("/v2/library/alpine/referrers/"+subject))
	if resp.StatusCode != 405 {
		t.Errorf("DELETE: status %d, want 405", resp.StatusCode)
	}
	assertOCIError(t, "DELETE", body, "UNSUPPORTED")
}

// newReferrersUpstream is a counting go-containerregistry registry with its
// referrers API on (it does not filter by artifactType).
func newReferrersUpstream(t *testing.T) *counting {
	t.Helper()
	u := &counting{reqs: map[string]int{}}
	reg := registry.New(registry.Logger(nopLogger()), registry.WithReferrersSupport(true))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs[r.Method+" "+r.URL.Path]++
		u.mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// seedReferrers pushes an image and two artifacts referring to it.
func seedReferrers(t *testing.T, u *counting) (subject string, sig, sbom refDesc) {
	t.Helper()
	img := randomImage(t, 1024, 1)
	u.push(t, "org/app", "v1", img)
	sig = u.pushArtifact(t, "org/app", img, sigType)
	sbom = u.pushArtifact(t, "org/app", img, sbomType)
	u.reset()
	return mustDigest(t, img), sig, sbom
}

func TestReferrersAPIProxied(t *testing.T) {
	up := newReferrersUpstream(t)
	subject, sig, sbom := seedReferrers(t, up)
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), newUpstream(t).host()))
	path := "/v2/org/app/referrers/" + subject

	for i := range 2 {
		resp, idx, _ := referrers(t, n, path)
		assertReferrers(t, "all", resp, idx, false, sig, sbom)
		resp, idx, _ = referrers(t, n, path+"?artifactType="+sbomType)
		assertReferrers(t, "filtered by cairn", resp, idx, true, sbom)
		if got := up.count("GET", "/referrers/"+subject); got != 2 {
			t.Errorf("round %d: upstream referrers GETs %d, want 2 (one per filter; cached within tag_ttl)", i, got)
		}
	}
	if got := up.count("GET", "/manifests/"); got != 0 {
		t.Errorf("upstream manifest GETs %d, want 0 (the API answered: no tag fallback)", got)
	}
}

// Past tag_ttl the upstream is asked again; when it is down, the last
// answer is served.
func TestReferrersServedStale(t *testing.T) {
	up := newReferrersUpstream(t)
	subject, sig, sbom := seedReferrers(t, up)
	cfg := testConfig(t, t.TempDir(), up.host(), newUpstream(t).host())
	ttl := config.Duration(time.Nanosecond) // every answer is stale at once
	for i := range cfg.Upstreams {
		cfg.Upstreams[i].TagTTL = &ttl
	}
	n := startNode(t, cfg)
	path := "/v2/org/app/referrers/" + subject

	resp, idx, _ := referrers(t, n, path)
	assertReferrers(t, "first", resp, idx, false, sig, sbom)
	// The upstream lists referrers in no fixed order: compare with the last
	// answer, the one held.
	resp, _, body := referrers(t, n, path)
	if got := up.count("GET", "/referrers/"+subject); resp.StatusCode != 200 || got != 2 {
		t.Errorf("past tag_ttl: status %d, upstream referrers GETs %d; want 200, 2", resp.StatusCode, got)
	}
	up.srv.Close()
	resp, _, stale := referrers(t, n, path)
	if resp.StatusCode != 200 || !bytes.Equal(stale, body) {
		t.Errorf("upstream down: status %d, body %s; want 200 and the last answer", resp.StatusCode, stale)
	}
	resp, _, _ = referrers(t, n, path+"?artifactType="+sigType)
	if resp.StatusCode != 503 {
		t.Errorf("upstream down, filter never asked, no referrers tag: status %d, want 503", resp.StatusCode)
	}
}
