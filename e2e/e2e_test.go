package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The images containerd pulls through cairn.
const (
	multiRef = "docker.io/library/multi:1.0" // an index: only the host's child is pulled
	plainRef = "docker.io/library/plain:1.0"
	ghcrRef  = "ghcr.io/org/app:v1" // the same image as plainRef, in another namespace
)

var pullRefs = []string{multiRef, plainRef, ghcrRef}

// pullAll pulls every ref of pullRefs through cairn and checks the digest
// containerd ends up with.
func pullAll(t *testing.T, ctd *containerd, node *cairnNode, fx *fixture, what string) {
	t.Helper()
	plain := mustDigest(t, fx.plain.Digest).String()
	want := map[string]string{multiRef: fx.indexHash.String(), plainRef: plain, ghcrRef: plain}
	for _, ref := range pullRefs {
		if err := ctd.pull(t, ref, want[ref]); err != nil {
			t.Errorf("%s: %v\ncairn log:\n%s", what, err, node.proc.log.Tail(20))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestPullThrough runs containerd and skopeo against cairn in front of two
// docker-registry upstreams: cold pulls, lazy index children, one upstream
// fetch per blob, a warm cache, the path-prefix namespace form, the
// upstreams gone, and a restart with the upstreams still gone.
func TestPullThrough(t *testing.T) {
	requireTools(t, "containerd", "ctr", "skopeo", "docker-registry")
	bin := cairnBinary(t)

	dockerHub := startUpstream(t, "docker.io")
	ghcr := startUpstream(t, "ghcr.io")
	fx := seed(t.Context(), t, dockerHub, ghcr)

	dataDir := t.TempDir()
	node := startCairn(t, bin, dataDir, dockerHub, ghcr)
	ctd := startContainerd(t)
	ctd.writeHosts(t, node.addr)

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"cold pulls", func(t *testing.T) {
			pullAll(t, ctd, node, fx, "cold pull")
			// ghcr.io/org/app exists only upstream in ghcr.io: the ns routing worked.
			if got := ghcr.manifestRequests(); !slices.Contains(got, "GET org/app v1") {
				t.Errorf("upstream ghcr.io manifest requests %q, want a GET of org/app v1", got)
			}
		}},
		{"index children are lazy", func(t *testing.T) { checkLazyChildren(t, node, dockerHub, fx) }},
		{"one upstream GET per blob", func(t *testing.T) { checkOneFetchPerBlob(t, dockerHub, ghcr, fx) }},
		{"warm pulls", func(t *testing.T) { checkWarmPulls(t, ctd, node, dockerHub, ghcr, fx) }},
		{"skopeo through the path prefix", func(t *testing.T) { checkSkopeo(t, node, fx) }},
		{"upstreams down", func(t *testing.T) {
			_ = dockerHub.proc.stop()
			_ = ghcr.proc.stop()
			ctd.clear(t) // a containerd with an empty content store
			pullAll(t, ctd, node, fx, "CAIRN BUG? pull from cache with the upstreams stopped")
		}},
		{"restart with upstreams down", func(t *testing.T) {
			node.stop(t)
			if err := node.start(t); err != nil {
				t.Fatalf("restart cairn on the same data dir: %v", err)
			}
			ctd.clear(t)
			pullAll(t, ctd, node, fx, "CAIRN BUG? pull from cache with the upstreams stopped")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Logf("upstream docker.io requests:\n%s\nupstream ghcr.io requests:\n%s",
				dockerHub.proc.log.Tail(40), ghcr.proc.log.Tail(40))
			break
		}
	}
	node.stop(t)
}

// checkLazyChildren: the pull of the index fetched only the host's child;
// the other platform's manifest and blobs never left the upstream.
func checkLazyChildren(t *testing.T, node *cairnNode, dockerHub *upstream, fx *fixture) {
	other := mustDigest(t, fx.otherChild.Digest).String()
	host := mustDigest(t, fx.hostChild.Digest).String()
	for _, r := range node.requests(0) {
		if strings.HasSuffix(r.Path, "/"+other) {
			t.Fatalf("harness: containerd itself asked cairn for the other platform's child (%s %s): not a test of cairn", r.Method, r.Path)
		}
	}
	var sawHost bool
	for _, r := range dockerHub.manifestRequests() {
		if strings.HasSuffix(r, " "+other) {
			t.Errorf("CAIRN BUG: upstream saw %q: the child for the other platform was fetched", r)
		}
		sawHost = sawHost || strings.HasSuffix(r, " "+host)
	}
	if !sawHost {
		t.Errorf("upstream never saw the host child %s: manifest requests %q", host, dockerHub.manifestRequests())
	}
	gets := dockerHub.blobGETs()
	for _, d := range blobDigests(t, fx.otherChild) {
		if gets[d] > 0 {
			t.Errorf("CAIRN BUG: blob %s of the other platform's child was fetched from upstream %d times", d, gets[d])
		}
	}
}

// checkOneFetchPerBlob: every blob went from the upstream to cairn at most
// once; the docker.io blobs the pulls needed exactly once.
func checkOneFetchPerBlob(t *testing.T, dockerHub, ghcr *upstream, fx *fixture) {
	for _, u := range []*upstream{dockerHub, ghcr} {
		for d, n := range u.blobGETs() {
			if n > 1 {
				t.Errorf("CAIRN BUG: upstream %s served blob %s %d times, want at most once", u.name, d, n)
			}
		}
	}
	gets := dockerHub.blobGETs()
	for _, img := range pulledDockerHub(fx) {
		for _, d := range blobDigests(t, img.img) {
			if gets[d] != 1 {
				t.Errorf("upstream docker.io served blob %s (%s) %d times, want exactly once", d, img.what, gets[d])
			}
		}
	}
	t.Logf("docker.io upstream blob GETs:\n%sghcr.io upstream blob GETs (0 when cairn shared docker.io's copies):\n%s",
		formatCounts(dockerHub.blobGETs()), formatCounts(ghcr.blobGETs()))
}

// checkWarmPulls: with containerd emptied, pulling everything again reaches
// cairn for every blob, and the upstreams see no new blob GET.
func checkWarmPulls(t *testing.T, ctd *containerd, node *cairnNode, dockerHub, ghcr *upstream, fx *fixture) {
	before := map[string]map[string]int{dockerHub.name: dockerHub.blobGETs(), ghcr.name: ghcr.blobGETs()}
	ctd.clear(t)
	mark := node.proc.log.Len()
	pullAll(t, ctd, node, fx, "warm pull")
	served := node.blobGETs(mark)
	for _, img := range pulledDockerHub(fx) {
		for _, d := range blobDigests(t, img.img) {
			if served[d] == 0 {
				t.Errorf("the warm pull did not GET blob %s (%s) from cairn: containerd was not really emptied", d, img.what)
			}
		}
	}
	for _, u := range []*upstream{dockerHub, ghcr} {
		if after := u.blobGETs(); !maps.Equal(after, before[u.name]) {
			t.Errorf("CAIRN BUG: a warm pull fetched blobs from upstream %s again:\nbefore:\n%safter:\n%s",
				u.name, formatCounts(before[u.name]), formatCounts(after))
		}
	}
	t.Logf("manifest requests to upstream docker.io so far: %q", dockerHub.manifestRequests())
}

// checkSkopeo: skopeo reaches the ghcr.io namespace by the path-prefix form
// (127.0.0.1:PORT/ghcr.io/org/app) and the default namespace without one.
func checkSkopeo(t *testing.T, node *cairnNode, fx *fixture) {
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	skopeo := func(args ...string) string {
		out, err := run(t.Context(), append([]string{"skopeo", "--policy", policy}, args...)...)
		if err != nil {
			t.Fatalf("%v\ncairn log:\n%s", err, node.proc.log.Tail(20))
		}
		return out
	}
	prefixed := "docker://" + node.addr + "/ghcr.io/org/app:v1"
	var info struct{ Digest, Architecture, Os string }
	if err := json.Unmarshal([]byte(skopeo("inspect", "--tls-verify=false", prefixed)), &info); err != nil {
		t.Fatal(err)
	}
	if want := mustDigest(t, fx.plain.Digest).String(); info.Digest != want {
		t.Errorf("skopeo inspect %s: digest %s, want %s", prefixed, info.Digest, want)
	}

	raw := skopeo("inspect", "--raw", "--tls-verify=false", "docker://"+node.addr+"/library/multi:1.0")
	if got, want := sha256hex(raw), fx.indexHash.Hex; got != want {
		t.Errorf("skopeo inspect --raw of the index through the default namespace: sha256 %s, want %s (the index must be served byte for byte)", got, want)
	}

	dir := filepath.Join(t.TempDir(), "app")
	skopeo("copy", "--src-tls-verify=false", prefixed, "dir:"+dir)
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha256hex(string(manifest)), mustDigest(t, fx.plain.Digest).Hex; got != want {
		t.Errorf("skopeo copy: manifest sha256 %s, want %s", got, want)
	}
	for _, d := range blobDigests(t, fx.plain) {
		hexd := strings.TrimPrefix(d, "sha256:")
		b, err := os.ReadFile(filepath.Join(dir, hexd))
		if err != nil {
			t.Errorf("skopeo copy: blob %s missing: %v", d, err)
			continue
		}
		if got := sha256hex(string(b)); got != hexd {
			t.Errorf("skopeo copy: blob %s has sha256 %s", d, got)
		}
	}
}

// imageRef names an image for failure messages.
type imageRef struct {
	what string
	img  v1.Image
}

// pulledDockerHub lists the images containerd needs from docker.io.
func pulledDockerHub(fx *fixture) []imageRef {
	return []imageRef{{"multi:1.0 host child", fx.hostChild}, {"plain:1.0", fx.plain}}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
