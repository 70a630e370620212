package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/cairn-mirror/cairn/internal/config"
)

// pushFixture is a node with an auth: section: alice may pull and push all
// of registry.internal, bob only registry.internal/bob/app, carol (a
// replicator) everything; anonymous
// clients pull (the default).
type pushFixture struct {
	node    *node
	docker  *counting // the docker.io mirror's upstream
	cfg     *config.Config
	dataDir string
}

var pushUsers = map[string]string{"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}

func newPushFixture(t *testing.T) *pushFixture {
	t.Helper()
	authSection := fmt.Sprintf(`auth:
  htpasswd_file: %q
  access:
    - users: [alice]
      repositories: ["registry.internal/**"]
      actions: [pull, push]
    - users: [bob]
      repositories: ["registry.internal/bob/app"]
      actions: [pull, push]
    - users: [carol]
      repositories: ["**"]
      actions: [pull, push, replicate]`, writeHtpasswd(t))
	f := &pushFixture{dataDir: t.TempDir()}
	f.docker = newUpstream(t)
	f.cfg = testConfig(t, f.dataDir, f.docker.host(), "127.0.0.1:9", authSection)
	f.node = startNode(t, f.cfg)
	return f
}

// writeHtpasswd writes the pushUsers to an htpasswd file and returns its path.
func writeHtpasswd(t testing.TB) string {
	t.Helper()
	var lines []string
	for _, u := range []string{"alice", "bob", "carol"} {
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
	return htpasswd
}

// send makes one request, with Basic credentials when user is not "": the
// user's own password, or the one given as "user:password".
func send(t *testing.T, method, url, user string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if u, pw, explicit := strings.Cut(user, ":"); explicit {
		req.SetBasicAuth(u, pw)
	} else if user != "" {
		req.SetBasicAuth(user, pushUsers[user])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	out, err := readAll(resp)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func (f *pushFixture) ref(t *testing.T, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(f.node.addr()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// A push with crane's library lands in a hosted namespace and is pulled
// back, byte for byte, by an anonymous client.
func TestPushThenAnonymousPull(t *testing.T) {
	f := newPushFixture(t)
	img := randomImage(t, 2048, 3)
	ref := f.ref(t, "registry.internal/team/app:v1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: pushUsers["alice"]})); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref) // anonymous
	if err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}
	assertSameImage(t, img, got)
	resp, _ := send(t, "GET", f.node.url("/v2/registry.internal/team/app/manifests/v1"), "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != mustDigest(t, img) {
		t.Errorf("GET by tag: status %d, digest %q; want 200, %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), mustDigest(t, img))
	}
	if strings.Contains(f.node.logs.String(), pushUsers["alice"]) {
		t.Error("the log holds alice's password")
	}
}

func assertSameImage(t *testing.T, want, got v1.Image) {
	t.Helper()
	wm, _ := want.RawManifest()
	gm, err := got.RawManifest()
	if err != nil || !bytes.Equal(wm, gm) {
		t.Fatalf("manifest differs (err %v)", err)
	}
	wc, _ := want.RawConfigFile()
	gc, err := got.RawConfigFile()
	if err != nil || !bytes.Equal(wc, gc) {
		t.Fatalf("config differs (err %v)", err)
	}
	wl, _ := want.Layers()
	gl, err := got.Layers()
	if err != nil || len(gl) != len(wl) {
		t.Fatalf("got %d layers (err %v), want %d", len(gl), err, len(wl))
	}
	for i := range wl {
		if a, b := layerBytes(t, wl[i]), layerBytes(t, gl[i]); !bytes.Equal(a, b) {
			t.Errorf("layer %d: %d bytes differ from the %d pushed", i, len(b), len(a))
		}
	}
}

// Writes need the right user with the right action; refusals say why.
func TestPushRefused(t *testing.T) {
	f := newPushFixture(t)
	tests := []struct {
		what   string
		path   string
		user   string
		status int
		code   string
	}{
		{"anonymous", "/v2/registry.internal/team/app/blobs/uploads/", "", 401, "UNAUTHORIZED"},
		{"wrong password", "/v2/registry.internal/team/app/blobs/uploads/", "alice:bob-secret", 401, "UNAUTHORIZED"},
		{"unknown user", "/v2/registry.internal/team/app/blobs/uploads/", "mallory:x", 401, "UNAUTHORIZED"},
		{"another user's repository", "/v2/registry.internal/team/app/blobs/uploads/", "bob", 403, "DENIED"},
		{"mirror namespace without replicate", "/v2/docker.io/library/alpine/blobs/uploads/", "alice", 403, "DENIED"},
		{"mirror namespace, anonymous", "/v2/library/alpine/blobs/uploads/", "", 401, "UNAUTHORIZED"},
		{"bob's own repository", "/v2/registry.internal/bob/app/blobs/uploads/", "bob", 202, ""},
	}
	for _, tt := range tests {
		resp, body := send(t, "POST", f.node.url(tt.path), tt.user, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d (body %s)", tt.what, resp.StatusCode, tt.status, body)
		}
		if tt.code != "" {
			assertOCIError(t, tt.what, body, tt.code)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); (tt.status == 401) != strings.HasPrefix(ch, `Basic realm="cairn"`) {
			t.Errorf("%s: WWW-Authenticate %q", tt.what, ch)
		}
	}
	// A wrong password is refused even where anonymous clients may go.
	if resp, _ := send(t, "GET", f.node.url("/v2/"), "alice:wrong", nil); resp.StatusCode != 401 {
		t.Errorf("GET /v2/ with a wrong password: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, "GET", f.node.url("/v2/"), "alice", nil); resp.StatusCode != 200 {
		t.Errorf("GET /v2/ as alice: status %d, want 200", resp.StatusCode)
	}
}

// Without an auth: section a push is 401 with a message that says why,
// not 405.
func TestPushWithoutAuthSection(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir(), "127.0.0.1:9", "127.0.0.1:9"))
	resp, body := send(t, "POST", n.url("/v2/registry.internal/team/app/blobs/uploads/"), "", nil)
	if resp.StatusCode != 401 || !strings.Contains(string(body), "no users") || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("status %d, WWW-Authenticate %q, body %s; want 401, a challenge, a message naming the missing users",
			resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	assertOCIError(t, "push", body, "UNAUTHORIZED")
}

// A chunk that does not start at the session's offset is 416 with the
// current Range; a session survives a restart and completes after it.
func TestChunkedUploadRangeAndRestart(t *testing.T) {
	f := newPushFixture(t)
	blob := bytes.Repeat([]byte("0123456789"), 2)
	repo := "/v2/registry.internal/team/app"
	resp, body := send(t, "POST", f.node.url(repo+"/blobs/uploads/"), "alice", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || !strings.HasPrefix(loc, repo+"/blobs/uploads/") || resp.Header.Get("Range") != "0-0" || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("POST: status %d, Location %q, Range %q; want 202, an upload of %s, 0-0 (body %s)", resp.StatusCode, loc, resp.Header.Get("Range"), repo, body)
	}
	resp, _ = send(t, "PATCH", f.node.url(loc), "alice", blob[:10], "Content-Range", "0-9", "Content-Type", "application/octet-stream")
	if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("PATCH 0-9: status %d, Range %q; want 202, 0-9", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp, body = send(t, "PATCH", f.node.url(loc), "alice", blob[5:15], "Content-Range", "5-14")
	if resp.StatusCode != 416 || resp.Header.Get("Range") != "0-9" {
		t.Errorf("PATCH 5-14: status %d, Range %q; want 416, 0-9 (body %s)", resp.StatusCode, resp.Header.Get("Range"), body)
	}
	other := strings.Replace(loc, "/team/app/", "/team/other/", 1)
	if resp, body = send(t, "GET", f.node.url(other), "alice", nil); resp.StatusCode != 404 {
		t.Errorf("the upload through another repository: status %d, want 404", resp.StatusCode)
	}
	assertOCIError(t, "another repository's upload", body, "BLOB_UPLOAD_UNKNOWN")

	f.node.stop(t)
	f.node = startNode(t, f.cfg)
	resp, _ = send(t, "GET", f.node.url(loc), "alice", nil)
	if resp.StatusCode != 204 || resp.Header.Get("Range") != "0-9" {
		t.Fatalf("status after restart: %d, Range %q; want 204, 0-9", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp, _ = send(t, "PATCH", f.node.url(loc), "alice", blob[10:], "Content-Range", "10-19")
	if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-19" {
		t.Fatalf("PATCH 10-19 after restart: status %d, Range %q; want 202, 0-19", resp.StatusCode, resp.Header.Get("Range"))
	}
	dgst := digestOf(blob)
	if resp, body = send(t, "PUT", f.node.url(loc+"?digest="+digestOf([]byte("x"))), "alice", nil); resp.StatusCode != 400 {
		t.Errorf("PUT with a wrong digest: status %d, want 400", resp.StatusCode)
	}
	assertOCIError(t, "wrong digest", body, "DIGEST_INVALID")
	resp, body = send(t, "PUT", f.node.url(loc+"?digest="+dgst), "alice", nil)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != repo+"/blobs/"+dgst || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Fatalf("PUT: status %d, Location %q, digest %q; want 201, the blob (body %s)", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Docker-Content-Digest"), body)
	}
	if resp, body = send(t, "GET", f.node.url(repo+"/blobs/"+dgst), "", nil); resp.StatusCode != 200 || !bytes.Equal(body, blob) {
		t.Errorf("anonymous GET of the pushed blob: status %d, %d bytes; want 200, the %d pushed", resp.StatusCode, len(body), len(blob))
	}
}

// Monolithic uploads, mounts, and manifests that name blobs the
// repository lacks.
func TestMonolithicMountAndManifestChecks(t *testing.T) {
	f := newPushFixture(t)
	blob := []byte("a monolithic blob")
	dgst := digestOf(blob)
	resp, body := send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/?digest="+dgst), "alice", blob)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Fatalf("monolithic POST: status %d (body %s), want 201", resp.StatusCode, body)
	}
	resp, _ = send(t, "POST", f.node.url("/v2/registry.internal/team/copy/blobs/uploads/?mount="+dgst+"&from=registry.internal/team/app"), "alice", nil)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/v2/registry.internal/team/copy/blobs/"+dgst {
		t.Errorf("mount: status %d, Location %q; want 201, the blob in team/copy", resp.StatusCode, resp.Header.Get("Location"))
	}
	missing := digestOf([]byte("never pushed"))
	resp, _ = send(t, "POST", f.node.url("/v2/registry.internal/team/copy/blobs/uploads/?mount="+missing+"&from=registry.internal/team/app"), "alice", nil)
	if resp.StatusCode != 202 || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Errorf("mount of a blob not held: status %d, want 202 and an upload", resp.StatusCode)
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":17},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":12}]}`, dgst, missing)
	resp, body = send(t, "PUT", f.node.url("/v2/registry.internal/team/app/manifests/v2"), "alice", []byte(manifest), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != 400 {
		t.Errorf("manifest naming a missing layer: status %d, want 400", resp.StatusCode)
	}
	assertOCIError(t, "missing layer", body, "MANIFEST_BLOB_UNKNOWN")
	big := bytes.Repeat([]byte(" "), 4<<20+1)
	if resp, _ = send(t, "PUT", f.node.url("/v2/registry.internal/team/app/manifests/big"), "alice", big, "Content-Type", "application/vnd.oci.image.manifest.v1+json"); resp.StatusCode != 413 {
		t.Errorf("a manifest over 4 MiB: status %d, want 413", resp.StatusCode)
	}
}

// A replicator writes into a mirror namespace, and may push an index
// whose children are absent; a plain pusher may not.
func TestReplicateIntoMirrorAndLazyIndex(t *testing.T) {
	f := newPushFixture(t)
	img := randomImage(t, 1024, 1)
	ref := f.ref(t, "docker.io/library/pushed:v1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: pushUsers["alice"]})); err == nil {
		t.Error("alice (push, no replicate) wrote into the docker.io mirror")
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "carol", Password: pushUsers["carol"]})); err != nil {
		t.Fatalf("carol (replicate) into the mirror: %v", err)
	}
	f.docker.reset()
	got, err := remote.Image(ref) // anonymous
	if err != nil {
		t.Fatalf("anonymous pull of the replicated tag: %v", err)
	}
	assertSameImage(t, img, got)
	if n := f.docker.count("GET", "") + f.docker.count("HEAD", ""); n != 0 {
		t.Errorf("the replicated tag was pulled with %d upstream requests, want 0 (never revalidated)", n)
	}

	child := digestOf([]byte("a child manifest nobody pushed"))
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":30}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1}}`, child, mustDigest(t, img))
	ct := "application/vnd.oci.image.index.v1+json"
	resp, body := send(t, "PUT", f.node.url("/v2/registry.internal/team/multi/manifests/v1"), "alice", []byte(index), "Content-Type", ct)
	if resp.StatusCode != 400 {
		t.Errorf("index with an absent child, by a pusher: status %d, want 400", resp.StatusCode)
	}
	assertOCIError(t, "absent child", body, "MANIFEST_BLOB_UNKNOWN")
	dgst := digestOf([]byte(index))
	resp, body = send(t, "PUT", f.node.url("/v2/registry.internal/team/multi/manifests/"+dgst), "carol", []byte(index), "Content-Type", ct)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != dgst || resp.Header.Get("OCI-Subject") != mustDigest(t, img) ||
		resp.Header.Get("Location") != "/v2/registry.internal/team/multi/manifests/"+dgst {
		t.Errorf("index by a replicator: status %d, headers %v; want 201 with digest, subject and location (body %s)", resp.StatusCode, resp.Header, body)
	}
	if resp, body = send(t, "GET", f.node.url("/v2/registry.internal/team/multi/manifests/"+dgst), "", nil); resp.StatusCode != 200 || string(body) != index {
		t.Errorf("GET the pushed index: status %d, want 200 and its bytes", resp.StatusCode)
	}
}

// An anonymous mount (POST ?mount= without from=) links a held blob from
// a repository the user may pull, and only from one: a user who may not
// read any repository holding it, or a digest nobody holds, gets an
// upload. Anonymous clients may not pull here, so nothing is readable by
// accident.
func TestAnonymousMount(t *testing.T) {
	authSection := fmt.Sprintf(`auth:
  htpasswd_file: %q
  anonymous: []
  access:
    - users: [alice]
      repositories: ["registry.internal/**"]
      actions: [pull, push]
    - users: [bob]
      repositories: ["registry.internal/bob/**"]
      actions: [pull, push]`, writeHtpasswd(t))
	n := startNode(t, testConfig(t, t.TempDir(), "127.0.0.1:9", "127.0.0.1:9", authSection))
	blob := []byte("a blob alice pushed")
	dgst := digestOf(blob)
	if resp, body := send(t, "POST", n.url("/v2/registry.internal/alice/a/blobs/uploads/?digest="+dgst), "alice", blob); resp.StatusCode != 201 {
		t.Fatalf("alice's push into alice/a: status %d (body %s), want 201", resp.StatusCode, body)
	}

	b := "/v2/registry.internal/alice/b"
	resp, body := send(t, "POST", n.url(b+"/blobs/uploads/?mount="+dgst), "alice", nil)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != b+"/blobs/"+dgst || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Fatalf("alice's anonymous mount into alice/b: status %d, Location %q, digest %q; want 201, %s, %s (body %s)",
			resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Docker-Content-Digest"), b+"/blobs/"+dgst, dgst, body)
	}
	if resp, body = send(t, "GET", n.url(b+"/blobs/"+dgst), "alice", nil); resp.StatusCode != 200 || !bytes.Equal(body, blob) {
		t.Errorf("GET the mounted blob in alice/b: status %d, %d bytes; want 200, the %d pushed", resp.StatusCode, len(body), len(blob))
	}

	bob := "/v2/registry.internal/bob/app"
	resp, _ = send(t, "POST", n.url(bob+"/blobs/uploads/?mount="+dgst), "bob", nil)
	if resp.StatusCode != 202 || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Errorf("bob's anonymous mount of a blob only alice's repositories hold: status %d, want 202 and an upload", resp.StatusCode)
	}
	if resp, _ = send(t, "GET", n.url(bob+"/blobs/"+dgst), "bob", nil); resp.StatusCode != 404 {
		t.Errorf("GET in bob/app after the refused mount: status %d, want 404", resp.StatusCode)
	}

	// Once bob holds it himself, he mounts it from there, past alice's
	// repositories (which come first in the scan).
	if resp, body = send(t, "POST", n.url(bob+"/blobs/uploads/?digest="+dgst), "bob", blob); resp.StatusCode != 201 {
		t.Fatalf("bob's push into bob/app: status %d (body %s), want 201", resp.StatusCode, body)
	}
	if resp, _ = send(t, "POST", n.url("/v2/registry.internal/bob/copy/blobs/uploads/?mount="+dgst), "bob", nil); resp.StatusCode != 201 {
		t.Errorf("bob's anonymous mount into bob/copy: status %d, want 201", resp.StatusCode)
	}

	missing := digestOf([]byte("never pushed"))
	resp, _ = send(t, "POST", n.url(b+"/blobs/uploads/?mount="+missing), "alice", nil)
	if resp.StatusCode != 202 || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Errorf("anonymous mount of an unknown digest: status %d, want 202 and an upload", resp.StatusCode)
	}
}
