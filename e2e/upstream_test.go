package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// upstream is a docker-registry process standing in for a public registry.
type upstream struct {
	name string // the registry it stands in for: docker.io, ghcr.io
	addr string // 127.0.0.1:PORT
	proc *proc
	base int // log mark after seeding: requests before it are the test's own pushes
}

func (u *upstream) url() string { return "http://" + u.addr }

// startUpstream runs `docker-registry serve` on a free loopback port with
// its storage in a temp dir.
func startUpstream(t *testing.T, registry string) *upstream {
	t.Helper()
	dir := t.TempDir()
	u := withPortRetry(t, func() (*upstream, error) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := filepath.Join(dir, "config.yml")
		// The access log (combined log format) goes to stdout, logrus lines
		// to stderr: both land in one log file.
		yml := fmt.Sprintf("version: 0.1\n"+
			"log: {level: info}\n"+
			"storage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\n"+
			"http: {addr: %q, secret: e2e}\n", filepath.Join(dir, "data"), addr)
		if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
			return nil, err
		}
		p, err := startProc("docker-registry "+registry, filepath.Join(dir, "registry.log"), "docker-registry", "serve", cfg)
		if err != nil {
			return nil, err
		}
		u := &upstream{name: registry, addr: addr, proc: p}
		err = p.waitReady(startTimeout, func() error { return httpOK("http://" + addr + "/v2/") })
		if err := readyErr(p, err); err != nil {
			_ = p.stop()
			return nil, err
		}
		return u, nil
	})
	t.Cleanup(func() { _ = u.proc.stop() })
	t.Logf("upstream %s: docker-registry on %s, log %s", registry, u.addr, filepath.Join(dir, "registry.log"))
	return u
}

func httpOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// accessLine is one request in docker-registry's access log.
type accessLine struct {
	method string
	path   string // without the query
	status int
}

// `127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 65536 "" "agent"`
var combinedLog = regexp.MustCompile(`"([A-Z]+) (/v2/[^ ?"]*)[^ "]* HTTP/[0-9.]+" ([0-9]{3}) `)

// requests lists the requests the upstream logged since seeding.
func (u *upstream) requests() []accessLine {
	var out []accessLine
	for _, m := range combinedLog.FindAllStringSubmatch(u.proc.log.String()[u.base:], -1) {
		status, _ := strconv.Atoi(m[3])
		out = append(out, accessLine{method: m[1], path: m[2], status: status})
	}
	return out
}

var (
	blobPath     = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)
	manifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
)

// blobGETs counts GET requests per blob digest since seeding.
func (u *upstream) blobGETs() map[string]int {
	n := map[string]int{}
	for _, r := range u.requests() {
		if m := blobPath.FindStringSubmatch(r.path); m != nil && r.method == http.MethodGet {
			n[m[2]]++
		}
	}
	return n
}

// manifestRequests lists GET and HEAD requests for manifests since
// seeding, as "METHOD repo reference".
func (u *upstream) manifestRequests() []string {
	var out []string
	for _, r := range u.requests() {
		if m := manifestPath.FindStringSubmatch(r.path); m != nil {
			out = append(out, r.method+" "+m[1]+" "+m[2])
		}
	}
	return out
}

// fixture is what the test seeds into the upstreams.
type fixture struct {
	index      v1.ImageIndex // docker.io library/multi:1.0
	indexHash  v1.Hash
	hostChild  v1.Image // the child for runtime.GOARCH: pulled
	otherChild v1.Image // the other child: must never leave the upstream
	plain      v1.Image // docker.io library/plain:1.0 and ghcr.io org/app:v1
}

// The platforms of the index; the host's architecture must be one of them.
var indexArches = []string{"amd64", "arm64"}

// seed builds the fixture with go-containerregistry and pushes it.
func seed(ctx context.Context, t *testing.T, dockerHub, ghcr *upstream) *fixture {
	t.Helper()
	f := &fixture{}
	var adds []mutate.IndexAddendum
	for _, arch := range indexArches {
		img := platformImage(t, arch)
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
		if arch == runtime.GOARCH {
			f.hostChild = img
		} else {
			f.otherChild = img
		}
	}
	if f.hostChild == nil {
		t.Skipf("the index fixture has %v children; this machine is %s", indexArches, runtime.GOARCH)
	}
	f.index = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList), adds...)
	f.indexHash = mustDigest(t, f.index.Digest)
	f.plain = platformImage(t, runtime.GOARCH)

	push(ctx, t, dockerHub.addr+"/library/multi:1.0", f.index)
	push(ctx, t, dockerHub.addr+"/library/plain:1.0", f.plain)
	push(ctx, t, ghcr.addr+"/org/app:v1", f.plain)
	for _, u := range []*upstream{dockerHub, ghcr} {
		u.base = u.proc.log.Len()
	}
	return f
}

// platformImage is a linux/arch image of 3 random 64 KiB layers (each a
// gzipped tar holding one file) whose config names its platform.
func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = []string{"/bin/true"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes an image or an index to a plain-HTTP loopback registry.
func push(ctx context.Context, t *testing.T, ref string, content any) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	switch c := content.(type) {
	case v1.Image:
		err = remote.Write(r, c, remote.WithContext(ctx))
	case v1.ImageIndex:
		err = remote.WriteIndex(r, c, remote.WithContext(ctx))
	default:
		err = fmt.Errorf("cannot push %T", content)
	}
	if err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

func mustDigest(t *testing.T, digest func() (v1.Hash, error)) v1.Hash {
	t.Helper()
	h, err := digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// blobDigests lists an image's config and layer digests.
func blobDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// formatCounts prints a per-digest count map on one line per digest.
func formatCounts(n map[string]int) string {
	var b strings.Builder
	for d, c := range n {
		fmt.Fprintf(&b, "  %s x%d\n", d, c)
	}
	return b.String()
}
