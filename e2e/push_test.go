package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/crypto/bcrypt"
)

// The users of the push node: alice may push anywhere in
// registry.internal, bob only to registry.internal/bob/app.
var pushUsers = map[string]string{"alice": "alice-e2e-secret", "bob": "bob-e2e-secret"}

// pushedRef is where the tests push, in the hosted namespace.
const pushedRef = "registry.internal/team/app:v1"

// TestPushWithSkopeo pushes an OCI layout with skopeo and credentials into
// a real `cairn serve` with an auth: section, checks that a wrong password,
// no credentials and a user limited to another repository are refused,
// then restarts cairn with anonymous pulls allowed and reads the image back
// anonymously with skopeo (digests and bytes) and containerd (through cairn
// as the mirror of registry.internal, unpacked).
//
// The push runs with anonymous clients allowed nothing: with anonymous
// pulls on, skopeo never sends its credentials (see
// TestPushWithSkopeoAnonymousPull).
func TestPushWithSkopeo(t *testing.T) {
	requireTools(t, "skopeo", "containerd", "ctr")
	bin := cairnBinary(t)
	node := startCairnWith(t, bin, t.TempDir(), pushConfig(t, "[]"))
	sk := newSkopeo(t)
	src, img := ociLayout(t)
	digest := mustDigest(t, img.Digest).String()
	dest := "docker://" + node.addr + "/" + pushedRef

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"push with credentials", func(t *testing.T) { skopeoPush(t, sk, node, src, dest) }},
		{"refusals", func(t *testing.T) { checkPushRefusals(t, sk, node, src) }},
		{"anonymous clients may not read yet", func(t *testing.T) {
			if out, err := sk.run(t, "inspect", "--raw", "--tls-verify=false", "--no-creds", dest); err == nil {
				t.Errorf("CAIRN BUG: anonymous inspect with anonymous: [] succeeded:\n%s", out)
			}
		}},
		{"restart with anonymous pulls", func(t *testing.T) {
			setAnonymous(t, node, "[pull]")
			node.stop(t)
			if err := node.start(t); err != nil {
				t.Fatalf("restart cairn on the same data dir: %v", err)
			}
		}},
		{"anonymous read back", func(t *testing.T) { checkPushedImage(t, sk, node, img, digest) }},
		{"containerd pulls the pushed image", func(t *testing.T) {
			ctd := startContainerd(t)
			writeHostedHosts(t, ctd, node.addr)
			if err := ctd.pull(t, pushedRef, digest); err != nil {
				t.Fatalf("%v\ncairn log:\n%s", err, node.proc.log.Tail(30))
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			break
		}
	}
	node.stop(t)
}

// TestPushWithSkopeoAnonymousPull is the common setup, anonymous pulls and
// authenticated pushes on one node, with skopeo (containers/image, as
// podman and buildah). skopeo learns which credentials to send only from
// the challenge of its GET /v2/ ping, so cairn challenges an anonymous
// ping whenever it has users; anonymous clients then send empty Basic
// credentials, which count as none, and pull.
func TestPushWithSkopeoAnonymousPull(t *testing.T) {
	requireTools(t, "skopeo")
	node := startCairnWith(t, cairnBinary(t), t.TempDir(), pushConfig(t, "[pull]"))
	sk := newSkopeo(t)
	src, img := ociLayout(t)
	skopeoPush(t, sk, node, src, "docker://"+node.addr+"/"+pushedRef)
	checkPushedImage(t, sk, node, img, mustDigest(t, img.Digest).String())
	node.stop(t)
}

// skopeoPush copies src to dest as alice.
func skopeoPush(t *testing.T, sk *skopeoCLI, node *cairnNode, src, dest string) {
	t.Helper()
	mark := node.proc.log.Len()
	if _, err := sk.run(t, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:"+pushUsers["alice"], src, dest); err != nil {
		t.Fatalf("skopeo copy to cairn as alice: %v\ncairn log:\n%s", err, node.proc.log.Tail(30))
	}
	if strings.Contains(node.proc.log.String()[mark:], pushUsers["alice"]) {
		t.Error("cairn's log holds alice's password")
	}
}

// setAnonymous rewrites the anonymous: line of the node's config.
func setAnonymous(t *testing.T, node *cairnNode, actions string) {
	t.Helper()
	b, err := os.ReadFile(node.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg, n := anonymousLine.ReplaceAllString(string(b), "  anonymous: "+actions), len(anonymousLine.FindAllString(string(b), -1))
	if n != 1 {
		t.Fatalf("harness: %d anonymous: lines in %s, want 1", n, node.config)
	}
	if err := os.WriteFile(node.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

var anonymousLine = regexp.MustCompile(`(?m)^  anonymous: .*$`)

// pushConfig is the config after the listeners and data dir: a docker.io
// mirror nobody reaches (the default namespace), the hosted
// registry.internal, and an auth: section with pushUsers in a bcrypt
// htpasswd file and anonymous clients allowed the given actions.
func pushConfig(t *testing.T, anonymous string) string {
	t.Helper()
	var lines []string
	for _, u := range []string{"alice", "bob"} {
		hash, err := bcrypt.GenerateFromPassword([]byte(pushUsers[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(hash))
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`auth:
  htpasswd_file: %q
  anonymous: %s
  access:
    - users: [alice]
      repositories: ["registry.internal/**"]
      actions: [pull, push]
    - users: [bob]
      repositories: ["registry.internal/bob/app"]
      actions: [pull, push]
upstreams:
  - name: docker.io
    url: http://127.0.0.1:9
    default: true
  - name: registry.internal
`, htpasswd, anonymous)
}

// skopeoCLI runs skopeo with an accept-anything policy and an empty auth
// file, so that no credentials of the machine's leak into the test.
type skopeoCLI struct{ policy, authfile string }

func newSkopeo(t *testing.T) *skopeoCLI {
	t.Helper()
	dir := t.TempDir()
	s := &skopeoCLI{policy: filepath.Join(dir, "policy.json"), authfile: filepath.Join(dir, "auth.json")}
	if err := os.WriteFile(s.policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.authfile, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs `skopeo --policy P <cmd> --authfile A args...`.
func (s *skopeoCLI) run(t *testing.T, cmd string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"skopeo", "--policy", s.policy, cmd, "--authfile", s.authfile}, args...)
	return run(t.Context(), argv...)
}

// ociLayout writes an OCI image (OCI media types, three gzipped layers, the
// host's platform) into an OCI layout tagged v1, and returns skopeo's name
// for it.
func ociLayout(t *testing.T) (string, v1.Image) {
	t.Helper()
	img := randomOCIImage(t, runtime.GOARCH, 3, 64<<10, []string{"/bin/true"})
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":v1", img
}

// checkPushedImage reads the pushed image back without credentials:
// skopeo inspect's digest, the raw manifest byte for byte, and a copy into
// a dir: layout whose every blob hashes to its name.
func checkPushedImage(t *testing.T, sk *skopeoCLI, node *cairnNode, img v1.Image, digest string) {
	ref := "docker://" + node.addr + "/" + pushedRef
	out, err := sk.run(t, "inspect", "--tls-verify=false", "--no-creds", ref)
	if err != nil {
		t.Fatalf("anonymous skopeo inspect: %v\ncairn log:\n%s", err, node.proc.log.Tail(20))
	}
	var info struct{ Digest, Architecture string }
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	if info.Digest != digest || info.Architecture != runtime.GOARCH {
		t.Errorf("skopeo inspect: digest %s, architecture %s; want %s, %s", info.Digest, info.Architecture, digest, runtime.GOARCH)
	}
	raw, err := sk.run(t, "inspect", "--raw", "--tls-verify=false", "--no-creds", ref)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.RawManifest(); raw != string(want) {
		t.Errorf("skopeo inspect --raw: %d bytes (sha256 %s), want the %d pushed (%s)", len(raw), sha256hex(raw), len(want), digest)
	}

	dir := filepath.Join(t.TempDir(), "back")
	if _, err := sk.run(t, "copy", "--src-tls-verify=false", "--src-no-creds", ref, "dir:"+dir); err != nil {
		t.Fatalf("anonymous skopeo copy back: %v", err)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + sha256hex(string(manifest)); got != digest {
		t.Errorf("copied back: manifest %s, want %s", got, digest)
	}
	for _, d := range blobDigests(t, img) {
		hexd := strings.TrimPrefix(d, "sha256:")
		b, err := os.ReadFile(filepath.Join(dir, hexd))
		if err != nil {
			t.Errorf("copied back: blob %s missing: %v", d, err)
			continue
		}
		if got := sha256hex(string(b)); got != hexd {
			t.Errorf("copied back: blob %s has sha256 %s", d, got)
		}
	}
}

// checkPushRefusals: a wrong password, no credentials and bob outside his
// repository are refused (401, 401, 403) and leave no tag; bob in his own
// repository is not (so the refusals are about who, not about skopeo).
func checkPushRefusals(t *testing.T, sk *skopeoCLI, node *cairnNode, src string) {
	tests := []struct {
		what  string
		creds []string
		repo  string
		ok    bool
		says  string // in skopeo's error
	}{
		{"wrong password", []string{"--dest-creds", "alice:not-the-password"}, "registry.internal/team/wrongpw", false, "unauthorized"},
		{"no credentials", []string{"--dest-no-creds"}, "registry.internal/team/anon", false, "unauthorized"},
		{"bob outside his repository", []string{"--dest-creds", "bob:" + pushUsers["bob"]}, "registry.internal/team/bob", false, "403"},
		{"bob in his repository", []string{"--dest-creds", "bob:" + pushUsers["bob"]}, "registry.internal/bob/app", true, ""},
	}
	for _, tt := range tests {
		dest := "docker://" + node.addr + "/" + tt.repo + ":v1"
		args := append(append([]string{"--dest-tls-verify=false"}, tt.creds...), src, dest)
		out, err := sk.run(t, "copy", args...)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.what, err)
		case !tt.ok && err == nil:
			t.Errorf("CAIRN BUG: %s: the push succeeded:\n%s", tt.what, out)
		case !tt.ok && !strings.Contains(strings.ToLower(out), tt.says):
			t.Errorf("%s: refused, but skopeo's error does not say %q:\n%s", tt.what, tt.says, out)
		}
		// alice may read all of registry.internal: the tag is there only
		// after a push that was allowed.
		_, err = sk.run(t, "inspect", "--raw", "--tls-verify=false", "--creds", "alice:"+pushUsers["alice"], dest)
		if tt.ok != (err == nil) {
			t.Errorf("%s: after the push, inspect of %s as alice: %v; want the tag only if the push was allowed", tt.what, tt.repo, err)
		}
	}
}

// writeHostedHosts points containerd's registry.internal at cairn, with a
// closed port as the server so that nothing but the mirror can answer.
func writeHostedHosts(t *testing.T, c *containerd, mirror string) {
	t.Helper()
	dir := filepath.Join(c.hosts, "registry.internal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = \"http://127.0.0.1:9\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", mirror)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}
