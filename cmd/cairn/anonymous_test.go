package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/internal/config"
)

// accountUpstream is a real registry that serves only requests carrying
// the account's Basic credentials (acme / acme-token), as a private Docker
// Hub repository does. It counts the requests it refused and served.
type accountUpstream struct {
	srv              *httptest.Server
	passwordFilePath string
	mu               sync.Mutex
	refused, served  int
}

func newAccountUpstream(t *testing.T) *accountUpstream {
	t.Helper()
	u := &accountUpstream{passwordFilePath: filepath.Join(t.TempDir(), "acme-token")}
	if err := os.WriteFile(u.passwordFilePath, []byte("acme-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Logger(nopLogger()))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		allowed := ok && user == "acme" && pw == "acme-token"
		u.mu.Lock()
		if allowed {
			u.served++
		} else {
			u.refused++
		}
		u.mu.Unlock()
		if !allowed {
			w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *accountUpstream) counts() (refused, served int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.refused, u.served
}

// pushWithBasic writes img to the registry at url as repoTag, logged in.
func pushWithBasic(t *testing.T, url, repoTag string, img v1.Image, user, pw string) {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(url, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pw})); err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

func basicAuth(user, pw string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

func imageDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// accountConfig is a node mirroring the account upstream as docker.io
// (credentialed) and a public ghcr.io, under the given auth section and
// docker.io extras.
func accountConfig(t *testing.T, up *accountUpstream, public, auth, hubExtra string) (*config.Config, error) {
	t.Helper()
	yaml := fmt.Sprintf(`version: 1
listen: "127.0.0.1:0"
admin_listen: ""
data_dir: %q
log: {level: debug, format: json}
%s
upstreams:
  - name: docker.io
    url: %s
    default: true
    username: acme
    password_file: %q
%s  - name: ghcr.io
    url: http://%s
`, t.TempDir(), auth, up.srv.URL, up.passwordFilePath, hubExtra, public)
	path := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(path)
}

// Before issue 14, a node with no auth section served a credentialed
// namespace to anyone: anonymous pulls used the account. Now that config
// is refused at start, and in the mixed setup (public mirrors open, the
// account behind login) an anonymous client is refused on the account's
// namespace, without cairn asking the upstream, while a user is served
// and the public mirror stays open.
func TestAnonymousClientRefusedWhereCredentialsWouldServeIt(t *testing.T) {
	up := newAccountUpstream(t)
	img := randomImage(t, 512, 1)
	pushWithBasic(t, up.srv.URL, "private/app:v1", img, "acme", "acme-token")
	public := newUpstream(t)
	public.push(t, "org/tool", "v1", randomImage(t, 256, 1))

	if _, err := accountConfig(t, up, public.host(), "", ""); err == nil ||
		!strings.Contains(err.Error(), "anonymous_pulls_use_credentials: true") {
		t.Fatalf("no auth section with a credentialed namespace: got %v, want it refused, naming the way out", err)
	}

	auth := fmt.Sprintf(`auth:
  htpasswd_file: %q
  anonymous: []
  access:
    - {users: [anonymous], repositories: ["ghcr.io/**"], actions: [pull]}
    - {users: ["*"], repositories: ["docker.io/**"], actions: [pull]}`, writeHtpasswd(t))
	cfg, err := accountConfig(t, up, public.host(), auth, "")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	_, servedBefore := up.counts()
	manifest := n.url("/v2/docker.io/private/app/manifests/v1")
	resp, body := get(t, "GET", manifest)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous pull from the credentialed namespace: %d, want 401", resp.StatusCode)
	}
	assertOCIError(t, "anonymous pull from the credentialed namespace", body, "UNAUTHORIZED")
	if _, served := up.counts(); served != servedBefore {
		t.Errorf("the upstream served %d requests for an anonymous client, want none", served-servedBefore)
	}
	resp, _ = get(t, "GET", manifest, "Authorization", basicAuth("alice", pushUsers["alice"]), "Accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json")
	if want := imageDigest(t, img); resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want {
		t.Errorf("alice's pull: %d digest %q, want 200 %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), want)
	}
	if resp, _ := get(t, "GET", n.url("/v2/ghcr.io/org/tool/manifests/v1")); resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous pull from the public mirror: %d, want 200", resp.StatusCode)
	}
}

// A deliberate shared-account mirror: with anonymous_pulls_use_credentials
// anonymous clients pull through the account, and the start-up log says
// so.
func TestSharedAccountMirrorServesAnonymousClients(t *testing.T) {
	up := newAccountUpstream(t)
	img := randomImage(t, 512, 1)
	pushWithBasic(t, up.srv.URL, "private/app:v1", img, "acme", "acme-token")
	cfg, err := accountConfig(t, up, "127.0.0.1:9", "", "    anonymous_pulls_use_credentials: true\n")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	resp, _ := get(t, "GET", n.url("/v2/docker.io/private/app/manifests/v1"), "Accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous pull through the shared account: %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(n.logs.String(), "anonymous clients pull through this namespace's upstream credentials") {
		t.Errorf("start-up log does not warn about the shared account:\n%s", n.logs.String())
	}
}
