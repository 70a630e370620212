package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/storage"
)

// deleteFixture is a node where alice may pull, push and delete in
// registry.internal (deletes on), bob only pull and push, carol also
// replicate everywhere; docker.io (a mirror) has deletes on, ghcr.io off.
type deleteFixture struct{ *pushFixture }

func newDeleteFixture(t *testing.T) deleteFixture {
	t.Helper()
	htpasswd := writeHtpasswd(t)
	f := &pushFixture{dataDir: t.TempDir(), docker: newUpstream(t)}
	f.cfg = testConfig(t, f.dataDir, f.docker.host(), "127.0.0.1:9", fmt.Sprintf(`auth:
  htpasswd_file: %q
  access:
    - users: [alice]
      repositories: ["registry.internal/**", "docker.io/**"]
      actions: [pull, push, delete]
    - users: [bob]
      repositories: ["registry.internal/**"]
      actions: [pull, push]
    - users: [carol]
      repositories: ["**"]
      actions: [pull, push, delete, replicate]`, htpasswd))
	all := config.Delete{Tags: true, Manifests: true, Blobs: true}
	for i, u := range f.cfg.Upstreams {
		if u.Name == "registry.internal" || u.Name == "docker.io" {
			f.cfg.Upstreams[i].Delete = all
		}
	}
	f.node = startNode(t, f.cfg)
	return deleteFixture{f}
}

func (f deleteFixture) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	if err := remote.Write(f.ref(t, repoTag), img, remote.WithAuth(&authn.Basic{Username: "alice", Password: pushUsers["alice"]})); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	return mustDigest(t, img)
}

// expect sends a request and checks its status and, for an error, its code.
func (f deleteFixture) expect(t *testing.T, method, path, user string, status int, code string) []byte {
	t.Helper()
	resp, body := send(t, method, f.node.url(path), user, nil)
	if resp.StatusCode != status {
		t.Fatalf("%s %s as %q: %d %s, want %d", method, path, user, resp.StatusCode, body, status)
	}
	if code != "" && method != http.MethodHead {
		assertOCIError(t, method+" "+path, body, code)
	}
	return body
}

// Deleting a tag, then the manifest, then a layer from one repository:
// each read of what went answers 404 at once, the other repository that
// was pushed the same content keeps serving it, and the bytes leave the
// disk only when the last repository deletes them.
func TestDeleteTagManifestBlob(t *testing.T) {
	f := newDeleteFixture(t)
	img := randomImage(t, 1024, 1)
	dgst := f.push(t, "registry.internal/team/app:v1", img)
	f.push(t, "registry.internal/team/other:v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layer := mustDigest(t, layers[0])
	app, other := "/v2/registry.internal/team/app/", "/v2/registry.internal/team/other/"

	f.expect(t, "GET", app+"manifests/v1", "", 200, "") // warm every in-memory cache
	f.expect(t, "DELETE", app+"manifests/v1", "alice", 202, "")
	f.expect(t, "GET", app+"manifests/v1", "", 404, "MANIFEST_UNKNOWN")
	f.expect(t, "GET", app+"manifests/"+dgst, "", 200, "")
	f.expect(t, "DELETE", app+"manifests/v1", "alice", 404, "MANIFEST_UNKNOWN")

	f.expect(t, "DELETE", app+"manifests/"+dgst, "alice", 202, "")
	f.expect(t, "GET", app+"manifests/"+dgst, "", 404, "MANIFEST_UNKNOWN")
	f.expect(t, "HEAD", app+"manifests/"+dgst, "", 404, "")
	f.expect(t, "GET", other+"manifests/v1", "", 200, "")
	f.expect(t, "GET", other+"manifests/"+dgst, "", 200, "")

	f.expect(t, "DELETE", app+"blobs/"+layer, "alice", 202, "")
	f.expect(t, "GET", app+"blobs/"+layer, "", 404, "BLOB_UNKNOWN")
	f.expect(t, "DELETE", app+"blobs/"+layer, "alice", 404, "BLOB_UNKNOWN")
	f.expect(t, "GET", other+"blobs/"+layer, "", 200, "")
	if _, err := f.node.s.store.Stat(layer); err != nil {
		t.Fatalf("the layer, still pushed in another repository, is gone from disk: %v", err)
	}

	f.expect(t, "DELETE", other+"manifests/"+dgst, "alice", 202, "")
	f.expect(t, "GET", other+"manifests/v1", "", 404, "MANIFEST_UNKNOWN") // its tag went with it
	f.expect(t, "DELETE", other+"blobs/"+layer, "alice", 202, "")
	for _, d := range []string{dgst, layer} {
		if _, err := f.node.s.store.Stat(d); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s deleted from every repository: Stat = %v, want ErrNotFound", d, err)
		}
	}
}

// Who may delete where: the delete action is needed, in a mirror
// namespace replicate as well; a namespace without deletes answers 405.
func TestDeleteRefusals(t *testing.T) {
	f := newDeleteFixture(t)
	dgst := f.push(t, "registry.internal/team/app:v1", randomImage(t, 512, 1))
	app := "/v2/registry.internal/team/app/manifests/"
	f.expect(t, "DELETE", app+"v1", "", 401, "UNAUTHORIZED")
	f.expect(t, "DELETE", app+"v1", "bob", 403, "DENIED")
	f.expect(t, "DELETE", app+dgst, "bob", 403, "DENIED")
	f.expect(t, "DELETE", "/v2/ghcr.io/org/app/manifests/v1", "carol", 405, "UNSUPPORTED")
	f.expect(t, "DELETE", "/v2/library/alpine/manifests/3.19", "alice", 403, "DENIED")           // docker.io: no replicate
	f.expect(t, "DELETE", "/v2/library/alpine/manifests/3.19", "carol", 404, "MANIFEST_UNKNOWN") // replicate: allowed
	f.expect(t, "GET", app+"v1", "", 200, "")
}

// A pushed manifest with a subject is listed among the subject's
// referrers (artifactType filter included) until it is deleted.
func TestReferrersFromPushedSubject(t *testing.T) {
	f := newDeleteFixture(t)
	img := randomImage(t, 512, 1)
	subject := f.push(t, "registry.internal/team/app:v1", img)
	config := []byte("{}")
	resp, _ := send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/?digest="+digestOf(config)), "alice", config)
	if resp.StatusCode != 201 {
		t.Fatalf("push the empty config: %d", resp.StatusCode)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	art := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x.sig",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[],`+
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d},"annotations":{"k":"v"}}`,
		digestOf(config), subject, len(raw))
	artDigest := digestOf([]byte(art))
	resp, body := send(t, "PUT", f.node.url("/v2/registry.internal/team/app/manifests/"+artDigest), "alice", []byte(art),
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != subject {
		t.Fatalf("push the artifact: %d %s, OCI-Subject %q", resp.StatusCode, body, resp.Header.Get("OCI-Subject"))
	}
	list := func(query string) []v1.Descriptor {
		t.Helper()
		body := f.expect(t, "GET", "/v2/registry.internal/team/app/referrers/"+subject+query, "", 200, "")
		var idx v1.IndexManifest
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		return idx.Manifests
	}
	for _, q := range []string{"", "?artifactType=application/x.sig"} {
		got := list(q)
		if len(got) != 1 || got[0].Digest.String() != artDigest || got[0].ArtifactType != "application/x.sig" ||
			got[0].Size != int64(len(art)) || got[0].Annotations["k"] != "v" {
			t.Fatalf("referrers%s = %+v, want the artifact %s", q, got, artDigest)
		}
	}
	if got := list("?artifactType=application/x.other"); len(got) != 0 {
		t.Errorf("referrers filtered on another type = %+v, want none", got)
	}
	f.expect(t, "DELETE", "/v2/registry.internal/team/app/manifests/"+artDigest, "alice", 202, "")
	if got := list(""); len(got) != 0 {
		t.Errorf("referrers after deleting the artifact = %+v, want none", got)
	}
}
