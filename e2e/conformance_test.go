package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// The OCI distribution-spec conformance suite. The module has no tagged
// versions; this pseudo-version is the one the Go module proxy serves.
const (
	conformancePkg     = "github.com/opencontainers/distribution-spec/conformance"
	conformanceVersion = "v0.0.0-20260831232431-97274622c111"
)

// Bounds on the conformance run.
const (
	installTimeout     = 5 * time.Minute // go install, cold module cache
	conformanceTimeout = 5 * time.Minute // one run of the suite
)

// The repositories the suite reads. They name no registry host, so cairn
// routes them to its default namespace, docker.io; two components, so
// library_prefix leaves them as they are.
const (
	confRepo1 = "library/conf-a"
	confRepo2 = "library/conf-b" // used by the suite only for mounts (push): never read here
)

// The artifact seeded as a referrer of the image.
const (
	confArtifactType = "application/vnd.cairn.conformance.test+json"
	confPayloadType  = "application/vnd.cairn.conformance.payload+json"
	ociEmptyJSON     = "application/vnd.oci.empty.v1+json"
)

// TestConformanceReadOnly runs the OCI distribution-spec conformance suite,
// read-only (pull, tag listing, referrers; no push, no deletes), against
// cairn in front of a docker-registry upstream seeded with an OCI image, an
// OCI multi-arch index, a Docker schema 2 image, a Docker manifest list,
// and an artifact whose subject is the OCI image, recorded under the
// sha256-<hex> referrers tag (distribution 2.8 has no referrers API). The
// suite asks for manifests with OCI types only in Accept: the Docker tags
// are served to it only if cairn never forwards that list upstream (given
// it, distribution converts schema 2 to a freshly signed schema 1). The
// suite runs twice: cold (every read fills cairn from the upstream) and
// warm (served from cairn's cache).
func TestConformanceReadOnly(t *testing.T) {
	requireConformanceTools(t)
	start := time.Now()
	suite := conformanceSuite(t)
	t.Logf("conformance suite %s ready in %s", conformanceVersion, time.Since(start).Round(time.Millisecond))
	bin := cairnBinary(t)

	dockerHub := startUpstream(t, "docker.io")
	seedStart := time.Now()
	fx := seedConformance(t.Context(), t, dockerHub)
	t.Logf("seeded %s in %s", dockerHub.addr, time.Since(seedStart).Round(time.Millisecond))
	node := startConformanceCairn(t, bin, t.TempDir(), dockerHub)

	env := fx.env(node.addr)
	t.Logf("suite environment:\n  %s", strings.Join(env, "\n  "))
	for _, pass := range []string{"cold", "warm"} {
		if !t.Run(pass, func(t *testing.T) { runConformance(t, suite, env, node) }) && pass == "cold" {
			t.Logf("upstream access log (last 40 lines):\n%s", accessLines(dockerHub, 40))
		}
	}
	// The suite checks only that a read-only referrers list is an OCI
	// index: whether the seeded artifact is in it is checked here.
	t.Run("referrers list the seeded artifact", func(t *testing.T) { checkConformanceReferrers(t, node, fx) })
	node.stop(t)
}

// The full run's hosted namespace, repositories and user. The suite puts
// OCI_REPO1 straight into its URLs (/v2/<repo>/...), so a first path
// component that names a namespace routes there.
const (
	confHosted   = "registry.internal"
	confFullRepo = confHosted + "/conformance/repo1"
	confFullRep2 = confHosted + "/conformance/repo2"
	confUser     = "conformance"
)

// TestConformanceFull runs the whole OCI distribution-spec conformance
// suite (version 1.1: pull, push, content discovery with referrers,
// content management, sha256 and sha512 content, upload cancel) against a
// cairn node with an auth: section, pushing into a hosted namespace with
// deletes enabled, as an htpasswd user that may pull, push and delete
// there, including anonymous mounts (POST ?mount= without from=), which
// mount from a repository holding the blob that the user may pull.
func TestConformanceFull(t *testing.T) {
	requireConformanceTools(t)
	suite := conformanceSuite(t)
	bin := cairnBinary(t)

	password := "conformance-secret"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(confUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := startCairnWith(t, bin, t.TempDir(), fmt.Sprintf(`auth:
  htpasswd_file: %q
  access:
    - users: [%s]
      repositories: ["%s/**"]
      actions: [pull, push, delete]
upstreams:
  - name: %s
    delete: {tags: true, manifests: true, blobs: true}
`, htpasswd, confUser, confHosted, confHosted))

	env := []string{
		"OCI_CONFIGURATION=",
		"OCI_VERSION=1.1",
		"OCI_REGISTRY=" + node.addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=" + confFullRepo,
		"OCI_REPO2=" + confFullRep2,
		"OCI_USERNAME=" + confUser,
		"OCI_PASSWORD=" + password,
		"OCI_LOG=debug",
		// Every API and data set the suite has; these are its 1.1
		// defaults, spelled out so that a new default cannot turn one off.
		"OCI_API_PING=true",
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true", // off by default in 1.1
		"OCI_DATA_SHA512=true",
		"OCI_DATA_SUBJECT=true",
		"OCI_DATA_SUBJECT_MISSING=true",
		"OCI_DATA_NONDISTRIBUTABLE=true",
	}
	t.Logf("suite environment:\n  %s", strings.Join(env, "\n  "))
	runConformance(t, suite, env, node)
	node.stop(t)
}

// accessLines is the last n lines of the upstream's access log, without
// its logrus lines.
func accessLines(u *upstream, n int) string {
	var lines []string
	for _, l := range strings.Split(u.proc.log.String(), "\n") {
		if combinedLog.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// requireConformanceTools is requireTools without the root check: the
// suite needs docker-registry, not containerd.
func requireConformanceTools(t *testing.T) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("end-to-end test: skipped with -short")
	}
	if _, err := exec.LookPath("docker-registry"); err != nil {
		if ci {
			t.Fatal("CI=true and docker-registry not installed (apt-get install docker-registry)")
		}
		t.Skip("needs docker-registry (apt-get install docker-registry); with CI=true this fails")
	}
}

// conformanceSuite returns the suite's binary, installed with go install
// from the module proxy into a directory under os.TempDir() keyed by the
// version, so later runs reuse it. A failed install fails the test with
// CI=true and skips it otherwise (no network).
func conformanceSuite(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "cairn-conformance-"+conformanceVersion)
	bin := filepath.Join(dir, "conformance")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin
	}
	fail := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the conformance suite could not be installed: %s", msg)
		}
		t.Skipf("conformance suite not installed (no Go module proxy?); with CI=true this fails: %s", msg)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		fail("%v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail("%v", err)
	}
	// Install into a private GOBIN, then rename: concurrent runs never see
	// a half-written binary.
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(t.Context(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", conformancePkg+"@"+conformanceVersion)
	cmd.Dir = tmp // outside the cairn module: pkg@version ignores go.mod anyway
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fail("go install %s@%s: %v\n%s", conformancePkg, conformanceVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "conformance"), bin); err != nil {
		fail("%v", err)
	}
	t.Logf("installed %s@%s in %s", conformancePkg, conformanceVersion, time.Since(start).Round(time.Millisecond))
	return bin
}

// startConformanceCairn starts cairn with the upstream as docker.io, the
// default namespace, with library_prefix.
func startConformanceCairn(t *testing.T, bin, dataDir string, dockerHub *upstream) *cairnNode {
	t.Helper()
	return startCairnWith(t, bin, dataDir, fmt.Sprintf(`upstreams:
  - name: docker.io
    url: %s
    aliases: [index.docker.io, registry-1.docker.io]
    library_prefix: true
    default: true
`, dockerHub.url()))
}

// confFixture is what seedConformance pushed to confRepo1, named the way
// the suite's read-only variables want it.
type confFixture struct {
	tags      []string // v1 (the image), multi (the index), docker, docker-multi, sha256-<hex> (the referrers tag)
	manifests []string // every manifest digest
	blobs     []string // every blob digest
	subject   v1.Hash  // the image: the artifact's subject
	artifact  v1.Descriptor
	fallback  string // the referrers tag
}

// seedConformance pushes, to confRepo1 on the upstream: an OCI image (tag
// v1), an OCI index of two platform images (tag multi), a Docker schema 2
// image as `crane append` makes it (tag docker), a Docker manifest list of
// two such images (tag docker-multi), and an artifact manifest whose
// subject is the OCI image. go-containerregistry finds no
// referrers API on distribution 2.8 and records the artifact the way
// clients do without one: in an OCI index tagged sha256-<hex of subject>.
func seedConformance(ctx context.Context, t *testing.T, u *upstream) *confFixture {
	t.Helper()
	repo, err := name.NewRepository(u.addr+"/"+confRepo1, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	fx := &confFixture{}
	addImage := func(img v1.Image) {
		fx.manifests = append(fx.manifests, mustDigest(t, img.Digest).String())
		fx.blobs = append(fx.blobs, blobDigests(t, img)...)
	}

	img := ociImage(t, runtime.GOARCH)
	push(ctx, t, repo.Tag("v1").String(), img)
	addImage(img)
	fx.subject = mustDigest(t, img.Digest)

	// An index of each kind, linux/<arch> children seeded as images too.
	platformIndex := func(mt types.MediaType, image func(*testing.T, string) v1.Image) v1.ImageIndex {
		idx := mutate.IndexMediaType(empty.Index, mt)
		for _, arch := range indexArches {
			child := image(t, arch)
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
				Add:        child,
				Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
			})
			addImage(child)
		}
		return idx
	}
	idx := platformIndex(types.OCIImageIndex, ociImage)
	push(ctx, t, repo.Tag("multi").String(), idx)
	fx.manifests = append(fx.manifests, mustDigest(t, idx.Digest).String())

	docker := dockerImage(t, runtime.GOARCH)
	push(ctx, t, repo.Tag("docker").String(), docker)
	addImage(docker)
	list := platformIndex(types.DockerManifestList, dockerImage)
	push(ctx, t, repo.Tag("docker-multi").String(), list)
	fx.manifests = append(fx.manifests, mustDigest(t, list.Digest).String())

	// The artifact: an empty config, one small JSON payload, the image as subject.
	emptyBlob := static.NewLayer([]byte("{}"), ociEmptyJSON)
	payload := static.NewLayer([]byte(`{"cairn":"conformance referrer"}`), confPayloadType)
	var layerDescs []v1.Descriptor
	for _, l := range []v1.Layer{emptyBlob, payload} {
		if err := remote.WriteLayer(repo, l, remote.WithContext(ctx)); err != nil {
			t.Fatalf("seed a blob of the artifact: %v", err)
		}
		d, err := partialDescriptor(l)
		if err != nil {
			t.Fatal(err)
		}
		layerDescs = append(layerDescs, d)
		fx.blobs = append(fx.blobs, d.Digest.String())
	}
	imgRaw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	config := layerDescs[0]
	config.Data = []byte("{}")
	raw, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  confArtifactType,
		Config:        config,
		Layers:        layerDescs[1:],
		Subject:       &v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: fx.subject, Size: int64(len(imgRaw))},
		Annotations:   map[string]string{"org.opencontainers.image.description": "cairn conformance referrer"},
	})
	if err != nil {
		t.Fatal(err)
	}
	artHash, artSize, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	fx.artifact = v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: artHash, Size: artSize, ArtifactType: confArtifactType}
	if err := remote.Put(repo.Digest(artHash.String()), rawManifest{raw, types.OCIManifestSchema1},
		remote.WithContext(ctx), remote.WithReferrersTagFallback(true)); err != nil {
		t.Fatalf("seed the artifact: %v", err)
	}
	fx.manifests = append(fx.manifests, artHash.String())

	// The referrers tag go-containerregistry wrote: it must list the artifact.
	fx.fallback = strings.Replace(fx.subject.String(), ":", "-", 1)
	desc, err := remote.Get(repo.Tag(fx.fallback), remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("harness: no referrers tag %s upstream after pushing the artifact: %v", fx.fallback, err)
	}
	var fallback v1.IndexManifest
	if err := json.Unmarshal(desc.Manifest, &fallback); err != nil {
		t.Fatal(err)
	}
	if len(fallback.Manifests) != 1 || fallback.Manifests[0].Digest != artHash || fallback.Manifests[0].ArtifactType != confArtifactType {
		t.Fatalf("harness: referrers tag %s lists %+v, want the artifact %s", fx.fallback, fallback.Manifests, artHash)
	}
	fx.manifests = append(fx.manifests, desc.Digest.String())
	fx.tags = []string{"v1", "multi", "docker", "docker-multi", fx.fallback}
	u.base = u.proc.log.Len()
	return fx
}

// ociImage is a linux/arch image in OCI media types: two random 16 KiB
// layers and a config naming the platform.
func ociImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	return randomOCIImage(t, arch, 2, 16<<10, nil)
}

// randomOCIImage is a linux/arch image in OCI media types with layers
// random layers of size bytes each, and cmd (if any) in its config.
func randomOCIImage(t *testing.T, arch string, layers int, size int64, cmd []string) v1.Image {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	return randomImage(t, base, types.OCILayer, arch, layers, size, cmd)
}

// randomImage appends layers random layers of size bytes and layerType to
// base, and names linux/arch and cmd (if any) in its config.
func randomImage(t *testing.T, base v1.Image, layerType types.MediaType, arch string, layers int, size int64, cmd []string) v1.Image {
	t.Helper()
	img := base
	for range layers {
		l, err := random.Layer(size, layerType)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = cmd
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// partialDescriptor describes a layer as a descriptor.
func partialDescriptor(l v1.Layer) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

// rawManifest is a manifest pushed byte for byte by remote.Put.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// env is the suite's configuration, read from its source (config.go):
// read-only mode is OCI_API_PUSH=false, deletes off, and the preloaded
// content named in OCI_RO_DATA_*; every read goes to OCI_REPO1.
func (fx *confFixture) env(registry string) []string {
	return []string{
		"OCI_CONFIGURATION=", // no oci-conformance.yaml: only these variables
		"OCI_VERSION=1.1",
		"OCI_REGISTRY=" + registry,
		"OCI_TLS=disabled",
		"OCI_REPO1=" + confRepo1,
		"OCI_REPO2=" + confRepo2,
		"OCI_LOG=debug", // each failed test's requests and responses on stderr
		"OCI_API_PING=true",
		"OCI_API_PULL=true",
		"OCI_API_PUSH=false",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_RO_DATA_TAGS=" + strings.Join(fx.tags, " "),
		"OCI_RO_DATA_MANIFESTS=" + strings.Join(fx.manifests, " "),
		"OCI_RO_DATA_BLOBS=" + strings.Join(dedup(fx.blobs), " "),
		"OCI_RO_DATA_REFERRERS=" + fx.subject.String(),
	}
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

var (
	// The suite's verdict: "OCI Conformance Result: Pass".
	conformanceResult = regexp.MustCompile(`(?m)^OCI Conformance Result: (\S+)\s*$`)
	// A count of its summary: "  Pass..........................:         47".
	conformanceCount = regexp.MustCompile(`(?m)^  (Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)\s*$`)
	// A node of its result tree: "    OCI Conformance Test/read-only/tag-list: FAIL",
	// followed, for a leaf, by its errors: "     - tag "multi" returned ...".
	conformanceNode  = regexp.MustCompile(`^\s*(OCI Conformance Test(?:/.*)?): (\S+)$`)
	conformanceError = regexp.MustCompile(`^\s* - (.*)$`)
	// OCI_LOG=debug: the requests and responses of a failed test, on stderr
	// (log/slog's text format, values quoted as Go strings).
	conformanceOutput = regexp.MustCompile(`msg="failed test output" name=("(?:[^"\\]|\\.)*") output=("(?:[^"\\]|\\.)*")`)
)

// suiteFailure is one failed leaf of the suite's result tree.
type suiteFailure struct {
	name, status string
	errs         []string
	exchange     string // the HTTP requests and responses, from the debug log
}

// runConformance runs the suite against cairn and fails the test with
// every failed case, its HTTP exchange, and cairn's access lines for those
// requests.
//
// With push on, the suite exits 0 or 1 and writes its reports. Read-only,
// this version of the suite prints its verdict and result tree
// on stdout and then cannot write its reports (no junit.xml, no
// report.html): it exits 2 with a nil dereference in ReportResultsYAML
// (the blob-push branches record a status for test data that push=false
// never generates), and even without that, "Blob get range" stays Unknown
// (tested only after a push), which results.yaml refuses to encode. So the
// verdict, counts and failures come from stdout, and each failure's HTTP
// exchange from the OCI_LOG=debug lines on stderr.
func runConformance(t *testing.T, suite string, env []string, node *cairnNode) {
	resultsDir, err := os.MkdirTemp("", "cairn-conformance-results-")
	if err != nil {
		t.Fatal(err)
	}
	mark := node.proc.log.Len()
	ctx, cancel := context.WithTimeout(t.Context(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite)
	cmd.Dir = resultsDir // where the suite looks for oci-conformance.yaml: none there
	cmd.Env = append(withoutOCIEnv(os.Environ()), env...)
	cmd.Env = append(cmd.Env, "OCI_RESULTS_DIR="+resultsDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	out, errOut := stdout.String(), stderr.String()
	keep := func() {
		_ = os.WriteFile(filepath.Join(resultsDir, "stdout.txt"), stdout.Bytes(), 0o644)
		_ = os.WriteFile(filepath.Join(resultsDir, "stderr.txt"), stderr.Bytes(), 0o644)
	}
	if ctx.Err() != nil {
		keep()
		t.Fatalf("the conformance suite did not finish in %s; its output is in %s", conformanceTimeout, resultsDir)
	}

	// Exit codes are not the verdict: a configuration error exits 0, a
	// failure 1, the crash above 2. Read the verdict line and the counts.
	m := conformanceResult.FindStringSubmatch(out)
	if m == nil {
		keep()
		t.Fatalf("the conformance suite printed no verdict (exit %s): configuration error? output in %s\nstdout:\n%s\nstderr:\n%s",
			exitStatus(runErr), resultsDir, out, truncate(errOut, 4000))
	}
	verdict := m[1]
	counts := map[string]int{}
	for _, c := range conformanceCount.FindAllStringSubmatch(out[strings.Index(out, m[0]):], -1) {
		counts[c[1]], _ = strconv.Atoi(c[2])
	}
	t.Logf("conformance suite: %s in %s (exit %s): %d passed, %d failed, %d errors, %d skipped, %d disabled of %d\n%s",
		verdict, elapsed, exitStatus(runErr), counts["Pass"], counts["FAIL"], counts["Error"], counts["Skip"], counts["Disabled"], counts["Total"],
		summary(out))

	failures := suiteFailures(out, errOut)
	if verdict == "Pass" && counts["Pass"] > 0 && counts["FAIL"] == 0 && counts["Error"] == 0 && len(failures) == 0 {
		_ = os.RemoveAll(resultsDir)
		return
	}
	keep()
	if counts["Pass"] == 0 {
		t.Errorf("the conformance suite passed no test: was it configured to run any?")
	}
	var b strings.Builder
	for _, f := range failures {
		fmt.Fprintf(&b, "\n--- %s: %s\n", f.status, f.name)
		for _, e := range f.errs {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
		if lines := cairnLinesFor(node, mark, f.exchange); lines != "" {
			fmt.Fprintf(&b, "cairn's access lines for these requests:\n%s", lines)
		}
		if f.exchange != "" {
			fmt.Fprintf(&b, "requests and responses:\n%s\n", truncate(f.exchange, 3000))
		}
	}
	t.Errorf("OCI conformance: %s, %d failed, %d errors; full stdout and stderr (with every exchange) in %s\n%s\nresult tree:\n%s",
		verdict, counts["FAIL"], counts["Error"], resultsDir, b.String(), resultTree(out))
}

// suiteFailures lists the failed and errored leaves of the result tree on
// stdout, each with the exchange the debug log recorded for it (tests of
// one name are matched in order).
func suiteFailures(stdout, stderr string) []suiteFailure {
	exchanges := map[string][]string{}
	for _, m := range conformanceOutput.FindAllStringSubmatch(stderr, -1) {
		name, err1 := strconv.Unquote(m[1])
		output, err2 := strconv.Unquote(m[2])
		if err1 == nil && err2 == nil {
			exchanges[name] = append(exchanges[name], output)
		}
	}
	var out []suiteFailure
	var cur *suiteFailure
	for _, line := range strings.Split(resultTree(stdout), "\n") {
		m := conformanceNode.FindStringSubmatch(line)
		if m == nil {
			switch e := conformanceError.FindStringSubmatch(line); {
			case cur != nil && e != nil:
				cur.errs = append(cur.errs, e[1])
			case cur != nil && len(cur.errs) > 0: // an error of several lines
				cur.errs[len(cur.errs)-1] += "\n    " + strings.TrimSpace(line)
			}
			continue
		}
		cur = nil
		if m[2] != "FAIL" && m[2] != "Error" {
			continue
		}
		out = append(out, suiteFailure{name: m[1], status: m[2]})
		cur = &out[len(out)-1]
	}
	// Only leaves print errors: drop the parents of failed leaves.
	leaves := out[:0]
	for _, f := range out {
		if len(f.errs) > 0 {
			if ex := exchanges[f.name]; len(ex) > 0 {
				f.exchange, exchanges[f.name] = ex[0], ex[1:]
			}
			leaves = append(leaves, f)
		}
	}
	return leaves
}

// resultTree is the suite's stdout before its configuration: the tree of
// every test and its status.
func resultTree(stdout string) string {
	if i := strings.Index(stdout, "\nConfiguration:\n"); i >= 0 {
		return stdout[:i]
	}
	return stdout
}

// withoutOCIEnv drops the caller's OCI_* variables: only the test's
// configuration reaches the suite.
func withoutOCIEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "OCI_") {
			out = append(out, kv)
		}
	}
	return out
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "0"
	case errors.As(err, &ee):
		return fmt.Sprint(ee.ExitCode())
	}
	return err.Error()
}

// summary is the suite's stdout from its result line on: counts, API and
// data conformance.
func summary(stdout string) string {
	if i := strings.Index(stdout, "OCI Conformance Result:"); i >= 0 {
		return stdout[i:]
	}
	return stdout
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n... (%d more bytes in junit.xml)", len(s)-n)
}

// The suite's record of one request: "Method: GET\nURL: http://...".
var suiteRequest = regexp.MustCompile(`(?m)^Method: (\S+)\nURL: (\S+)$`)

// cairnLinesFor lists cairn's access lines (logged after mark) for the
// requests in a failed case's output.
func cairnLinesFor(node *cairnNode, mark int, exchange string) string {
	reqs := node.requests(mark)
	var b strings.Builder
	seen := map[string]bool{}
	for _, m := range suiteRequest.FindAllStringSubmatch(exchange, -1) {
		u, err := url.Parse(m[2])
		if err != nil || seen[m[1]+" "+u.Path] {
			continue
		}
		seen[m[1]+" "+u.Path] = true
		for _, r := range reqs {
			if r.Method == m[1] && r.Path == u.Path {
				fmt.Fprintf(&b, "  %s %s -> %d route=%s repo=%s err=%q\n", r.Method, r.Path, r.Status, r.Route, r.Repo, r.Err)
			}
		}
	}
	return b.String()
}

// checkConformanceReferrers: cairn's referrers list for the image names
// the seeded artifact, with its artifactType, and the artifactType filter
// keeps it.
func checkConformanceReferrers(t *testing.T, node *cairnNode, fx *confFixture) {
	base := "http://" + node.addr + "/v2/" + confRepo1 + "/referrers/" + fx.subject.String()
	for _, u := range []string{base, base + "?artifactType=" + url.QueryEscape(confArtifactType)} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200 (an index built from the %s tag)\n%s\ncairn log:\n%s",
				u, resp.Status, fx.fallback, body.String(), node.proc.log.Tail(5))
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != string(types.OCIImageIndex) {
			t.Errorf("GET %s: Content-Type %q, want %q", u, ct, types.OCIImageIndex)
		}
		var idx v1.IndexManifest
		if err := json.Unmarshal(body.Bytes(), &idx); err != nil {
			t.Errorf("GET %s: not an index: %v\n%s", u, err, body.String())
			continue
		}
		var found bool
		for _, d := range idx.Manifests {
			found = found || (d.Digest == fx.artifact.Digest && d.Size == fx.artifact.Size &&
				d.MediaType == fx.artifact.MediaType && d.ArtifactType == confArtifactType)
		}
		if !found || idx.MediaType != types.OCIImageIndex || idx.SchemaVersion != 2 {
			t.Errorf("GET %s: %s, want an OCI index listing %+v", u, body.String(), fx.artifact)
		}
	}
}
