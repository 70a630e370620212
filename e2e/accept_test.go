package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Manifest media types, as clients write them in Accept.
const (
	mtOCIIndex      = string(types.OCIImageIndex)
	mtOCIManifest   = string(types.OCIManifestSchema1)
	mtDockerList    = string(types.DockerManifestList)
	mtDockerV2      = string(types.DockerManifestSchema2)
	mtOCIArtifact   = "application/vnd.oci.artifact.manifest.v1+json"
	mtSchema1Signed = string(types.DockerManifestSchema1Signed)
	mtSchema1       = string(types.DockerManifestSchema1)
)

// originAccept is the list cairn must send upstream for every manifest
// request, whatever its client sent: with every one of these types,
// distribution 2.x never converts a schema 2 manifest to schema 1.
var originAccept = []string{mtOCIIndex, mtOCIManifest, mtDockerList, mtDockerV2, mtOCIArtifact}

// negAccept is one client's Accept header: each value is one header line.
type negAccept struct {
	name   string
	values []string
}

// The Accept lists of the tests' clients.
var negAccepts = []negAccept{
	{"oci", []string{mtOCIIndex, mtOCIManifest}},   // two lines, as the conformance suite sends them
	{"oci-manifest-only", []string{mtOCIManifest}}, // the curl -sI
	{"docker", []string{mtDockerV2 + ", " + mtDockerList}},
	{"docker-manifest-only", []string{mtDockerV2}},
	{"index-less", []string{mtOCIManifest + ", " + mtDockerV2}},
	{"schema1-only", []string{mtSchema1Signed + ", " + mtSchema1}},
	{"empty", nil},
	{"any", []string{"*/*"}},
}

// types lists the media types of the header, without parameters.
func (a negAccept) types() []string {
	var out []string
	for _, v := range a.values {
		for part := range strings.SplitSeq(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil {
				out = append(out, mt)
			}
		}
	}
	return out
}

// takesIndex: the client accepts an index type, or anything.
func (a negAccept) takesIndex() bool {
	ts := a.types()
	return len(ts) == 0 || slices.Contains(ts, "*/*") || slices.Contains(ts, mtOCIIndex) || slices.Contains(ts, mtDockerList)
}

// negManifest is one manifest as pushed: its exact bytes, digest and type.
type negManifest struct {
	raw       []byte
	digest    string
	mediaType string
}

// negFixture is one tag seeded upstream for the negotiation tests.
type negFixture struct {
	what      string // docker-schema2-image, oci-image, oci-index, docker-list
	repo, tag string
	top       negManifest
	amd64     *negManifest // an index's linux/amd64 child (cache.default_platform's default)
	arm64     *negManifest // an index's other child: never asked for
}

func (fx negFixture) tagPath() string { return "/v2/" + fx.repo + "/manifests/" + fx.tag }

// negCase is one reference to ask cairn for and the manifest it must answer.
type negCase struct {
	kind, ref string // kind: tag, digest, amd64-child-digest
	want      func(negAccept) negManifest
}

// cases lists the fixture's references: by tag, the stored manifest, or the
// linux/amd64 child for a client that takes no index type; by digest,
// always that digest's manifest.
func (fx negFixture) cases() []negCase {
	top := func(negAccept) negManifest { return fx.top }
	cs := []negCase{{"tag", fx.tag, fx.byTag}, {"digest", fx.top.digest, top}}
	if fx.amd64 != nil {
		cs = append(cs, negCase{"amd64-child-digest", fx.amd64.digest, func(negAccept) negManifest { return *fx.amd64 }})
	}
	return cs
}

// byTag is what a client with Accept a gets for the tag: the stored
// manifest, or for an index and a client that takes no index type, the
// linux/amd64 child.
func (fx negFixture) byTag(a negAccept) negManifest {
	if fx.amd64 == nil || a.takesIndex() {
		return fx.top
	}
	return *fx.amd64
}

// manifester is an image or an index: what go-containerregistry pushed.
type manifester interface {
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

func negManifestOf(t *testing.T, m manifester) negManifest {
	t.Helper()
	raw, err := m.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := m.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return negManifest{raw: raw, digest: "sha256:" + hex.EncodeToString(sum[:]), mediaType: string(mt)}
}

// dockerImage is a linux/arch image in Docker schema 2 media types, built
// as `crane append` builds one: layers appended to empty.Image, which keeps
// its Docker manifest and config types. Two random 16 KiB layers.
func dockerImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img := randomImage(t, empty.Image, types.DockerLayer, arch, 2, 16<<10, nil)
	if mt, err := img.MediaType(); err != nil || mt != types.DockerManifestSchema2 {
		t.Fatalf("harness: the crane-append image has media type %q (%v), want %s", mt, err, types.DockerManifestSchema2)
	}
	return img
}

// seedNegotiation pushes to u, under library/<prefix>-<kind>:v1, a Docker
// schema 2 image, an OCI image, an OCI index and a Docker manifest list
// (each index with linux/amd64 and linux/arm64 children of its own kind).
func seedNegotiation(ctx context.Context, t *testing.T, u *upstream, prefix string) []negFixture {
	t.Helper()
	var fxs []negFixture
	for _, kind := range []struct {
		what  string
		image func(*testing.T, string) v1.Image
		index types.MediaType // "" for an image
	}{
		{"docker-schema2-image", dockerImage, ""},
		{"oci-image", ociImage, ""},
		{"oci-index", ociImage, types.OCIImageIndex},
		{"docker-list", dockerImage, types.DockerManifestList},
	} {
		fx := negFixture{what: kind.what, repo: "library/" + prefix + "-" + kind.what, tag: "v1"}
		ref := u.addr + "/" + fx.repo + ":" + fx.tag
		if kind.index == "" {
			img := kind.image(t, "amd64")
			push(ctx, t, ref, img)
			fx.top = negManifestOf(t, img)
			fxs = append(fxs, fx)
			continue
		}
		idx := mutate.IndexMediaType(empty.Index, kind.index)
		for _, arch := range []string{"amd64", "arm64"} {
			child := kind.image(t, arch)
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
				Add:        child,
				Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
			})
			m := negManifestOf(t, child)
			if arch == "amd64" {
				fx.amd64 = &m
			} else {
				fx.arm64 = &m
			}
		}
		push(ctx, t, ref, idx)
		fx.top = negManifestOf(t, idx)
		fxs = append(fxs, fx)
	}
	u.base = u.proc.log.Len()
	return fxs
}

// relayed is one manifest request cairn sent to the upstream.
type relayed struct {
	method, path, accept string
}

// relay stands between cairn and the docker-registry upstream, whose access
// log does not record Accept: it records every manifest request's Accept
// and can hold the GETs of chosen paths until released, so that a herd of
// clients is in cairn at once while the upstream fetch is under way.
type relay struct {
	srv     *httptest.Server
	release chan struct{} // closed by openGate
	events  chan struct{} // something the gate's opener waits for happened (buffered 1, senders never block)

	mu      sync.Mutex
	seen    []relayed
	gated   map[string]bool // paths whose GETs are held
	held    map[string]int  // GETs held per path
	open    sync.Once
	holdFor time.Duration
}

// startRelay proxies to u. GETs of gated paths wait for open (or holdFor).
func startRelay(t *testing.T, u *upstream, gated []string, holdFor time.Duration) *relay {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: u.addr}
	r := &relay{
		release: make(chan struct{}),
		events:  make(chan struct{}, 1),
		gated:   map[string]bool{},
		held:    map[string]int{},
		holdFor: holdFor,
	}
	for _, p := range gated {
		r.gated[p] = true
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if manifestPath.MatchString(req.URL.Path) {
			r.record(req)
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(func() { r.openGate(); r.srv.Close() })
	return r
}

// record notes a manifest request and holds a gated GET until the gate opens.
func (r *relay) record(req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, relayed{req.Method, req.URL.Path, strings.Join(req.Header.Values("Accept"), ", ")})
	hold := req.Method == http.MethodGet && r.gated[req.URL.Path]
	if hold {
		r.held[req.URL.Path]++
	}
	r.mu.Unlock()
	if !hold {
		return
	}
	select {
	case r.events <- struct{}{}:
	default:
	}
	timer := time.NewTimer(r.holdFor)
	defer timer.Stop()
	select {
	case <-r.release:
	case <-req.Context().Done():
	case <-timer.C:
	}
}

func (r *relay) openGate() { r.open.Do(func() { close(r.release) }) }

func (r *relay) url() string { return r.srv.URL }

// heldPaths counts the gated paths that have had at least one GET held.
func (r *relay) heldPaths() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

func (r *relay) requests() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// startNegotiationCairn starts cairn with the relay as its docker.io upstream.
func startNegotiationCairn(t *testing.T, r *relay) *cairnNode {
	t.Helper()
	return startCairnWith(t, cairnBinary(t), t.TempDir(), fmt.Sprintf(`upstreams:
  - name: docker.io
    url: %s
    default: true
`, r.url()))
}

// negResponse is what cairn answered to one manifest request.
type negResponse struct {
	status                      int
	contentType, digest, length string
	body                        []byte
}

// askManifest sends method for repo's manifest ref with accept's headers.
func askManifest(ctx context.Context, node *cairnNode, method, repo, ref string, accept negAccept, wrote func()) (negResponse, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+node.addr+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return negResponse{}, err
	}
	for _, v := range accept.values {
		req.Header.Add("Accept", v)
	}
	if wrote != nil {
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote() },
		}))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return negResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return negResponse{}, err
	}
	return negResponse{
		status:      resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		digest:      resp.Header.Get("Docker-Content-Digest"),
		length:      resp.Header.Get("Content-Length"),
		body:        body,
	}, nil
}

// problems lists how got differs from the manifest want, for method.
func (got negResponse) problems(method string, want negManifest) []string {
	var out []string
	if got.status != http.StatusOK {
		out = append(out, fmt.Sprintf("status %d, want 200 (body %.300q)", got.status, got.body))
	}
	if got.contentType != want.mediaType {
		out = append(out, fmt.Sprintf("Content-Type %q, want %q", got.contentType, want.mediaType))
	}
	if got.digest != want.digest {
		out = append(out, fmt.Sprintf("Docker-Content-Digest %q, want %q", got.digest, want.digest))
	}
	if got.length != strconv.Itoa(len(want.raw)) {
		out = append(out, fmt.Sprintf("Content-Length %q, want %d", got.length, len(want.raw)))
	}
	switch {
	case method == http.MethodHead && len(got.body) > 0:
		out = append(out, fmt.Sprintf("HEAD answered a body of %d bytes", len(got.body)))
	case method == http.MethodGet && got.status == http.StatusOK:
		sum := sha256.Sum256(got.body)
		if d := "sha256:" + hex.EncodeToString(sum[:]); d != want.digest {
			out = append(out, fmt.Sprintf("sha256(body) %s, want %s", d, want.digest))
		} else if !bytes.Equal(got.body, want.raw) {
			out = append(out, "body differs from the pushed bytes")
		}
	}
	return out
}

// cairnErrs lists the err of cairn's access lines for path logged after mark.
func cairnErrs(node *cairnNode, mark int, path string) []string {
	var out []string
	for _, r := range node.requests(mark) {
		if r.Path == path && r.Err != "" {
			out = append(out, fmt.Sprintf("%s %d: %s", r.Method, r.Status, r.Err))
		}
	}
	return out
}

// upstreamManifestCounts waits (up to 10 s) until u's access log shows every
// manifest request the relay forwarded, then counts them per "METHOD path".
func upstreamManifestCounts(t *testing.T, u *upstream, r *relay) map[string]int {
	t.Helper()
	want := len(r.requests())
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := map[string]int{}
		total := 0
		for _, l := range u.requests() {
			if manifestPath.MatchString(l.path) {
				n[l.method+" "+l.path]++
				total++
			}
		}
		if total >= want {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: the upstream's access log shows %d manifest requests after 10 s, the relay forwarded %d", total, want)
		}
		time.Sleep(20 * time.Millisecond) // the log is written by a pipe reader: a bounded poll
	}
}

// checkOneGETPerTag: the upstream's access log shows exactly one GET per
// fixture tag, at most one GET per digest, and none of an arm64 child.
// HEADs are counted and logged, not judged.
func checkOneGETPerTag(t *testing.T, u *upstream, r *relay, fxs []negFixture) {
	t.Helper()
	counts := upstreamManifestCounts(t, u, r)
	for _, fx := range fxs {
		if n := counts["GET "+fx.tagPath()]; n != 1 {
			t.Errorf("CAIRN BUG: the upstream served %d GETs of %s (%s), want exactly 1", n, fx.tagPath(), fx.what)
		}
		ms := []negManifest{fx.top}
		if fx.amd64 != nil {
			ms = append(ms, *fx.amd64)
		}
		for _, m := range ms {
			if n := counts["GET /v2/"+fx.repo+"/manifests/"+m.digest]; n > 1 {
				t.Errorf("CAIRN BUG: the upstream served %d GETs of %s@%s (%s), want at most 1", n, fx.repo, m.digest, fx.what)
			}
		}
		if fx.arm64 != nil {
			if n := counts["GET /v2/"+fx.repo+"/manifests/"+fx.arm64.digest]; n > 0 {
				t.Errorf("CAIRN BUG: the upstream served %d GETs of %s's arm64 child, which no client asked for", n, fx.what)
			}
		}
	}
	var lines []string
	for k, n := range counts {
		lines = append(lines, fmt.Sprintf("  %s x%d", k, n))
	}
	slices.Sort(lines)
	t.Logf("upstream manifest requests (GET and HEAD, from its access log):\n%s", strings.Join(lines, "\n"))
}

// checkOriginAccept: every manifest request cairn sent upstream carried
// the full Accept list and no schema 1 type (the relay's record: the
// docker-registry access log has no Accept).
func checkOriginAccept(t *testing.T, r *relay) {
	t.Helper()
	reqs := r.requests()
	if len(reqs) == 0 {
		t.Fatal("harness: the relay saw no manifest request")
	}
	bad := map[relayed]int{}
	for _, q := range reqs {
		got := negAccept{values: []string{q.accept}}.types()
		ok := !slices.Contains(got, mtSchema1Signed) && !slices.Contains(got, mtSchema1)
		for _, mt := range originAccept {
			ok = ok && slices.Contains(got, mt)
		}
		if !ok {
			bad[q]++
		}
	}
	nbad := 0
	for q, n := range bad {
		nbad += n
		t.Errorf("CAIRN BUG: %s %s went upstream %d times with Accept %q, want every one of %q and no schema 1 type",
			q.method, q.path, n, q.accept, originAccept)
	}
	t.Logf("%d manifest requests went upstream, %d of them without the full Accept list or with schema 1", len(reqs), nbad)
}

// TestManifestNegotiationServesStoredManifestOrAmd64Child asks cairn (the
// first request for each tag cold, the rest warm) for a Docker schema 2 image, an OCI image, an OCI index
// and a Docker manifest list on a docker-registry upstream, by tag and by
// digest (and an index's linux/amd64 child by digest), HEAD then GET, with
// each client Accept list. Every answer is 200 with the true Content-Type,
// Docker-Content-Digest and Content-Length, and a GET's body is the pushed
// bytes: the stored manifest, except a tag naming an index asked for by a
// client that takes no index type, which gets the linux/amd64 child. HEAD
// and GET agree. Then the upstream served one GET per tag, at most one per
// digest, and every manifest request cairn sent it had the full Accept
// list, never schema 1 (so distribution never converted to schema 1).
func TestManifestNegotiationServesStoredManifestOrAmd64Child(t *testing.T) {
	requireConformanceTools(t)
	u := startUpstream(t, "docker.io")
	fxs := seedNegotiation(t.Context(), t, u, "neg")
	r := startRelay(t, u, nil, 0)
	node := startNegotiationCairn(t, r)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	for _, fx := range fxs {
		for _, c := range fx.cases() {
			for _, a := range negAccepts {
				t.Run(fx.what+"/"+c.kind+"/"+a.name, func(t *testing.T) {
					want := c.want(a)
					mark := node.proc.log.Len()
					var got [2]negResponse
					for i, method := range []string{http.MethodHead, http.MethodGet} {
						resp, err := askManifest(ctx, node, method, fx.repo, c.ref, a, nil)
						if err != nil {
							t.Fatalf("%s %s@%s: %v", method, fx.repo, c.ref, err)
						}
						got[i] = resp
						if p := resp.problems(method, want); len(p) > 0 {
							t.Errorf("CAIRN BUG: %s /v2/%s/manifests/%s with Accept %q: %s\ncairn: %q",
								method, fx.repo, c.ref, a.values, strings.Join(p, "; "), cairnErrs(node, mark, "/v2/"+fx.repo+"/manifests/"+c.ref))
						}
					}
					h, g := got[0], got[1]
					if h.status != g.status || h.contentType != g.contentType || h.digest != g.digest || h.length != g.length {
						t.Errorf("CAIRN BUG: HEAD and GET disagree: HEAD %d %q %q %s, GET %d %q %q %s",
							h.status, h.contentType, h.digest, h.length, g.status, g.contentType, g.digest, g.length)
					}
				})
			}
		}
	}
	t.Run("one upstream GET per tag, at most one per digest", func(t *testing.T) { checkOneGETPerTag(t, u, r, fxs) })
	t.Run("upstream always asked with the full Accept list", func(t *testing.T) { checkOriginAccept(t, r) })
	node.stop(t)
}

// TestManifestNegotiationMixedAcceptHerdMakesOneUpstreamGETPerTag sends, to
// four cold tags at once (a Docker schema 2 image, an OCI image, an OCI
// index, a Docker manifest list), a GET and a HEAD per client Accept list:
// 64 requests. The relay holds the upstream GETs of the tags until every
// client's request is written and each tag's fetch has begun, so all of
// them are in cairn during the fetch. The upstream then shows exactly one
// GET per tag (single flight per tag, whatever the Accept), every client
// got the answer TestManifestNegotiationServesStoredManifestOrAmd64Child
// expects, and every upstream manifest request had the full Accept list.
func TestManifestNegotiationMixedAcceptHerdMakesOneUpstreamGETPerTag(t *testing.T) {
	requireConformanceTools(t)
	u := startUpstream(t, "docker.io")
	fxs := seedNegotiation(t.Context(), t, u, "herd")
	var gated []string
	for _, fx := range fxs {
		gated = append(gated, fx.tagPath())
	}
	const holdFor = 15 * time.Second
	r := startRelay(t, u, gated, holdFor)
	node := startNegotiationCairn(t, r)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	type result struct {
		fx     negFixture
		method string
		accept negAccept
		resp   negResponse
		err    error
	}
	var (
		results []*result
		wg      sync.WaitGroup
		wroteMu sync.Mutex
		wrote   int
	)
	notify := func() {
		select {
		case r.events <- struct{}{}:
		default:
		}
	}
	mark := node.proc.log.Len()
	for _, fx := range fxs {
		for _, a := range negAccepts {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				res := &result{fx: fx, method: method, accept: a}
				results = append(results, res)
				wg.Add(1)
				go func() {
					defer wg.Done()
					res.resp, res.err = askManifest(ctx, node, method, fx.repo, fx.tag, a, func() {
						wroteMu.Lock()
						wrote++
						wroteMu.Unlock()
						notify()
					})
				}()
			}
		}
	}

	// Open the gate once every request is written and every tag's
	// upstream GET is held, or at the deadline.
	deadline := time.NewTimer(holdFor)
	defer deadline.Stop()
	for {
		wroteMu.Lock()
		all := wrote >= len(results) // a request retried on a fresh connection is written twice
		wroteMu.Unlock()
		if all && r.heldPaths() == len(fxs) {
			break
		}
		select {
		case <-r.events:
			continue
		case <-deadline.C:
		}
		wroteMu.Lock()
		t.Errorf("after %s: %d of %d requests written, %d of %d tags' upstream GETs held: opening the gate anyway",
			holdFor, wrote, len(results), r.heldPaths(), len(fxs))
		wroteMu.Unlock()
		break
	}
	r.openGate()
	wg.Wait()

	for _, res := range results {
		want := res.fx.byTag(res.accept)
		if res.err != nil {
			t.Errorf("%s %s:%s with Accept %s: %v", res.method, res.fx.repo, res.fx.tag, res.accept.name, res.err)
			continue
		}
		if p := res.resp.problems(res.method, want); len(p) > 0 {
			t.Errorf("CAIRN BUG: herd %s %s:%s (%s) with Accept %s %q: %s", res.method, res.fx.repo, res.fx.tag, res.fx.what,
				res.accept.name, res.accept.values, strings.Join(p, "; "))
		}
	}
	if t.Failed() {
		var errs []string
		for _, fx := range fxs {
			errs = append(errs, cairnErrs(node, mark, fx.tagPath())...)
		}
		slices.Sort(errs)
		t.Logf("cairn's errors for the herd's tags:\n  %s", strings.Join(slices.Compact(errs), "\n  "))
	}
	t.Run("one upstream GET per tag", func(t *testing.T) { checkOneGETPerTag(t, u, r, fxs) })
	t.Run("upstream always asked with the full Accept list", func(t *testing.T) { checkOriginAccept(t, r) })
	node.stop(t)
}
