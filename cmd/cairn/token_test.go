package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/auth"
	"github.com/cairn-mirror/cairn/internal/config"
)

// bearerFixture is the pushFixture's users and rules with auth.token on:
// an Ed25519 key in a temp dir, the default realm (the node's /token).
type bearerFixture struct {
	*pushFixture
	key *auth.Key
}

func newBearerFixture(t *testing.T) *bearerFixture {
	t.Helper()
	keyFile, key := tokenKey(t)
	authSection := fmt.Sprintf(`auth:
  htpasswd_file: %q
  token:
    key_file: %q
  access:
    - users: [alice]
      repositories: ["registry.internal/**"]
      actions: [pull, push]
    - users: [bob]
      repositories: ["registry.internal/bob/app"]
      actions: [pull, push]`, writeHtpasswd(t), keyFile)
	f := &pushFixture{dataDir: t.TempDir()}
	f.docker = newUpstream(t)
	f.cfg = testConfig(t, f.dataDir, f.docker.host(), "127.0.0.1:9", authSection)
	f.node = startNode(t, f.cfg)
	return &bearerFixture{pushFixture: f, key: key}
}

// token asks the node's /token for scopes as user (see send), and returns
// the status and the token ("" unless 200).
func (f *bearerFixture) token(t *testing.T, user string, scopes ...string) (int, string) {
	t.Helper()
	q := url.Values{"service": {"cairn"}, "scope": scopes}
	resp, body := send(t, "GET", f.node.url("/token?"+q.Encode()), user, nil)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	var tr auth.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" || tr.AccessToken != tr.Token || tr.ExpiresIn <= 0 {
		t.Fatalf("token response %s: %v", body, err)
	}
	return resp.StatusCode, tr.Token
}

// grant verifies tok with the node's key, as the node does.
func (f *bearerFixture) grant(t *testing.T, tok string) *auth.Grant {
	t.Helper()
	v, err := auth.NewVerifier(f.key, auth.WithService("cairn"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return g
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// crane's library, given a user's password, follows the Bearer challenge
// to /token, pushes into registry.internal and pulls back; an anonymous
// client pulls through a token too.
func TestTokenPushPullWithCrane(t *testing.T) {
	f := newBearerFixture(t)
	resp, _ := send(t, "GET", f.node.url("/v2/"), "", nil)
	want := fmt.Sprintf(`Bearer realm="%s",service="cairn"`, f.node.url("/token"))
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("anonymous ping: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	img := randomImage(t, 2048, 2)
	ref := f.ref(t, "registry.internal/team/app:v1")
	alice := remote.WithAuth(&authn.Basic{Username: "alice", Password: pushUsers["alice"]})
	if err := remote.Write(ref, img, alice); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, alice)
	if err != nil {
		t.Fatalf("pull as alice: %v", err)
	}
	assertSameImage(t, img, got)
	got, err = remote.Image(ref)
	if err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}
	assertSameImage(t, img, got)
	logs := f.node.logs.String()
	if !strings.Contains(logs, `"msg":"token issued","component":"token","user":"alice"`) {
		t.Errorf("no token was issued to alice: the push did not go through the token flow")
	}
	if strings.Contains(logs, pushUsers["alice"]) {
		t.Error("the log holds alice's password")
	}
}

// An anonymous client pulls docker.io's library/alpine by its short name:
// the challenge names the canonical docker.io/library/alpine, and short
// names asked at /token are canonicalised to it too.
func TestTokenAnonymousPullCanonicalises(t *testing.T) {
	f := newBearerFixture(t)
	img := randomImage(t, 1024, 1)
	f.docker.push(t, "library/alpine", "3", img)
	resp, _ := send(t, "GET", f.node.url("/v2/library/alpine/manifests/3"), "alice:wrong", nil)
	want := fmt.Sprintf(`Bearer realm="%s",service="cairn",scope="repository:docker.io/library/alpine:pull"`, f.node.url("/token"))
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("wrong password: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	got, err := remote.Image(f.ref(t, "library/alpine:3"))
	if err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}
	assertSameImage(t, img, got)
	_, tok := f.token(t, "", "repository:library/alpine:pull,push", "repository:alpine:pull", "repository:quay.io/x/y:pull")
	g := f.grant(t, tok)
	if len(g.Access) != 1 || g.Access[0].Name != "docker.io/library/alpine" || g.Access[0].Actions != auth.NewActions(auth.Pull) || g.Subject != "" {
		t.Errorf("anonymous grant %+v, want only pull on docker.io/library/alpine", g)
	}
}

// Asking for more than the rules allow yields a token with only what they
// do, and that token cannot push.
func TestTokenScopeEscalation(t *testing.T) {
	f := newBearerFixture(t)
	_, tok := f.token(t, "bob", "repository:registry.internal/team/app:pull,push")
	g := f.grant(t, tok)
	if g.Subject != "bob" || len(g.Access) != 1 || g.Access[0].Actions != auth.NewActions(auth.Pull) {
		t.Fatalf("bob's grant %+v, want pull only on registry.internal/team/app", g)
	}
	if resp, _ := send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/"), "", nil, bearer(tok)...); resp.StatusCode != 403 {
		t.Errorf("bob's push with a pull token: %d, want 403", resp.StatusCode)
	}
	_, tok = f.token(t, "alice", "repository:library/alpine:pull,push,delete")
	if g := f.grant(t, tok); len(g.Access) != 1 || g.Access[0].Actions != auth.NewActions(auth.Pull) {
		t.Errorf("alice's grant on the mirror %+v, want pull only", g)
	}
}

// A token grants on the repository it names, not on another.
func TestTokenScopedToRepository(t *testing.T) {
	f := newBearerFixture(t)
	_, tok := f.token(t, "alice", "repository:registry.internal/team/a:pull,push")
	if resp, body := send(t, "POST", f.node.url("/v2/registry.internal/team/a/blobs/uploads/"), "", nil, bearer(tok)...); resp.StatusCode != 202 {
		t.Fatalf("push where the token grants it: %d %s, want 202", resp.StatusCode, body)
	}
	resp, body := send(t, "POST", f.node.url("/v2/registry.internal/team/b/blobs/uploads/"), "", nil, bearer(tok)...)
	want := fmt.Sprintf(`Bearer realm="%s",service="cairn",scope="repository:registry.internal/team/b:push"`, f.node.url("/token"))
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("push elsewhere: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	assertOCIError(t, "push elsewhere", body, "UNAUTHORIZED")
	_, tok = f.token(t, "bob", "repository:registry.internal/bob/app:pull,push")
	if resp, _ := send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/"), "", nil, bearer(tok)...); resp.StatusCode != 403 {
		t.Errorf("bob's token on alice's repository: %d, want 403", resp.StatusCode)
	}
}

// Expired, forged and re-signed tokens are refused with a Bearer
// challenge; the same claims signed right, and current, are accepted.
func TestTokenRefused(t *testing.T) {
	f := newBearerFixture(t)
	everything, err := auth.NewRules(0, []auth.Rule{{Users: []string{"alice"}, Repositories: []string{"**"}, Actions: auth.NewActions(auth.Pull, auth.Push)}})
	if err != nil {
		t.Fatal(err)
	}
	scope := []auth.Scope{{Name: "registry.internal/team/app", Actions: auth.NewActions(auth.Pull, auth.Push)}}
	issue := func(key *auth.Key, opts ...auth.TokenOption) string {
		is, err := auth.NewIssuer(key, everything, append([]auth.TokenOption{auth.WithService("cairn")}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := is.Issue("alice", scope)
		if err != nil {
			t.Fatal(err)
		}
		return out.Token
	}
	otherFile := filepath.Join(t.TempDir(), "other.key")
	if err := auth.GenerateKeyFile(otherFile); err != nil {
		t.Fatal(err)
	}
	other, err := auth.LoadKey(otherFile)
	if err != nil {
		t.Fatal(err)
	}
	good := issue(f.key)
	forged := issue(other)
	_, pullOnly := f.token(t, "alice", "repository:registry.internal/team/app:pull")
	spliced := forged[:strings.LastIndexByte(forged, '.')] + pullOnly[strings.LastIndexByte(pullOnly, '.'):]
	gp := strings.Split(good, ".")
	reclaimed := strings.Split(pullOnly, ".")[0] + "." + gp[1] + "." + strings.Split(pullOnly, ".")[2]
	tests := []struct {
		what   string
		token  string
		status int
	}{
		{"signed by the node's key", good, 202},
		{"expired", issue(f.key, auth.WithTokenClock(func() time.Time { return time.Now().Add(-time.Hour) })), 401},
		{"signed by another key", forged, 401},
		{"another key's claims with a real signature", spliced, 401},
		{"escalated claims with a pull token's signature", reclaimed, 401},
		{"another service", issue(f.key, auth.WithService("elsewhere")), 401},
		{"garbage", "not.a.token", 401},
	}
	path := f.node.url("/v2/registry.internal/team/app/blobs/uploads/")
	for _, tt := range tests {
		resp, body := send(t, "POST", path, "", nil, bearer(tt.token)...)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.what, resp.StatusCode, body, tt.status)
		}
		if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
			t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", tt.what, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// The token endpoint refuses wrong credentials (with a Basic challenge)
// and another service; Basic credentials still work on the API itself.
func TestTokenEndpointAndBasic(t *testing.T) {
	f := newBearerFixture(t)
	resp, _ := send(t, "GET", f.node.url("/token?service=cairn&scope=repository:registry.internal/team/app:pull"), "alice:wrong", nil)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="cairn"`) {
		t.Errorf("wrong password at /token: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	tests := []struct {
		what, query string
		status      int
	}{
		{"another service", "service=elsewhere&scope=repository:registry.internal/team/app:pull", 400},
		{"malformed scope", "service=cairn&scope=repository:Team/App:pull", 400},
		{"unknown action", "service=cairn&scope=repository:registry.internal/team/app:own", 400},
		{"empty credentials", "service=cairn", 200},
	}
	for _, tt := range tests {
		if resp, body := send(t, "GET", f.node.url("/token?"+tt.query), ":", nil); resp.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.what, resp.StatusCode, body, tt.status)
		}
	}
	if resp, body := send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/"), "alice", nil); resp.StatusCode != 202 {
		t.Errorf("push with Basic credentials: %d %s, want 202", resp.StatusCode, body)
	}
	if resp, _ := send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/"), "bob", nil); resp.StatusCode != 403 {
		t.Errorf("bob's push with Basic credentials: %d, want 403", resp.StatusCode)
	}
	if resp, _ := send(t, "GET", f.node.url("/v2/"), "alice", nil); resp.StatusCode != 200 {
		t.Errorf("alice's ping with Basic credentials: %d, want 200", resp.StatusCode)
	}
}

// tokenKey writes a new Ed25519 token key file and returns its path and key.
func tokenKey(t testing.TB) (string, *auth.Key) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	key, err := auth.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, key
}

// A token issued before a reload that takes the access away does not
// outlive the change: the rules in force are asked as well as the token.
func TestTokenRefusedAfterReloadTookItsAccessAway(t *testing.T) {
	f := newBearerFixture(t)
	_, tok := f.token(t, "alice", "repository:registry.internal/team/app:pull,push")
	uploads := f.node.url("/v2/registry.internal/team/app/blobs/uploads/")
	if resp, body := send(t, "POST", uploads, "", nil, bearer(tok)...); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push with alice's token: %d %s, want 202", resp.StatusCode, body)
	}
	narrower := *f.cfg
	narrower.Auth.Access = []config.AccessRule{{Users: []string{"alice"}, Repositories: []string{"registry.internal/**"}, Actions: []string{"pull"}}}
	r := f.node.s.reload
	r.source = func() (*config.Config, error) { return &narrower, nil }
	r.reload()
	if resp, body := send(t, "POST", uploads, "", nil, bearer(tok)...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("push with the same token after the reload: %d %s, want 403", resp.StatusCode, body)
	}
	if resp, _ := send(t, "HEAD", f.node.url("/v2/registry.internal/team/app/manifests/v1"), "", nil, bearer(tok)...); resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("pull with the token after the reload: %d, want it still allowed", resp.StatusCode)
	}
}
