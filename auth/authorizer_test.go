package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// testUsers are the htpasswd users of testAuthorizer's sections.
var testUsers = map[string]string{"alice": "alice-secret", "bob": "bob-secret"}

// testSection is an auth: section with testUsers: alice may pull and push
// registry.internal/**, bob only pull it; anonymous clients pull (the
// default). extra is added to it (a token: key, say).
func testSection(t testing.TB, extra string) config.Auth {
	t.Helper()
	dir := t.TempDir()
	var lines []string
	for _, u := range []string{"alice", "bob"} {
		lines = append(lines, u+":"+hashOf(t, testUsers[u]))
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(strings.NewReader(fmt.Sprintf(`version: 1
auth:
  htpasswd_file: %q
  access:
    - {users: [alice], repositories: ["registry.internal/**"], actions: [pull, push]}
    - {users: [bob], repositories: ["registry.internal/**"], actions: [pull]}
%s
upstreams:
  - {name: docker.io, url: "http://127.0.0.1:9", default: true}
  - {name: registry.internal}
`, htpasswd, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Auth
}

// testRouter routes like testSection's upstreams.
func testRouter(t testing.TB) *route.Router {
	t.Helper()
	r, err := route.NewRouter([]route.Namespace{
		{Name: "docker.io", LibraryPrefix: true, Default: true, Mirror: true},
		{Name: "registry.internal"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tokenSection is the auth.token lines of a section with a new key.
func tokenSection(t testing.TB) (string, *Key) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("  token: {key_file: %q}", keyFile), key
}

func basicHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func request(method, authz string) *http.Request {
	r := httptest.NewRequest(method, "/v2/", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

func TestAuthorize(t *testing.T) {
	a, err := NewAuthorizer(testSection(t, ""), testRouter(t))
	if err != nil {
		t.Fatal(err)
	}
	const repo = "registry.internal/team/app"
	alice, bob := basicHeader("alice", testUsers["alice"]), basicHeader("bob", testUsers["bob"])
	for _, tt := range []struct {
		what     string
		authz    string
		repo     string
		act      Action
		user     string
		want     error  // nil: allowed
		wantChal string // the challenge's prefix of an Unauthorized error
	}{
		{"anonymous ping with users configured", "", "", 0, "", ocierr.Unauthorized, "Basic "},
		{"alice's ping", alice, "", 0, "alice", nil, ""},
		{"anonymous pull", "", repo, Pull, "", nil, ""},
		{"empty credentials pull", "Basic Og==", repo, Pull, "", nil, ""},
		{"anonymous push", "", repo, Push, "", ocierr.Unauthorized, "Basic "},
		{"alice's push", alice, repo, Push, "alice", nil, ""},
		{"bob's push", bob, repo, Push, "", ocierr.Denied, ""},
		{"wrong password", basicHeader("alice", "nope"), repo, Pull, "", ocierr.Unauthorized, "Basic "},
		{"malformed Basic", "Basic !!", repo, Pull, "", ocierr.Unauthorized, "Basic "},
		{"a Bearer token without auth.token", "Bearer x.y.z", repo, Pull, "", ocierr.Unauthorized, "Basic "},
	} {
		user, err := a.Authorize(request("GET", tt.authz), tt.repo, tt.act)
		if tt.want == nil {
			if err != nil || user != tt.user {
				t.Errorf("%s: got %q, %v, want %q allowed", tt.what, user, err, tt.user)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %q, %v, want %v", tt.what, user, err, tt.want)
			continue
		}
		var c interface{ Challenge() string }
		if got := errors.As(err, &c); got != (tt.wantChal != "") || got && !strings.HasPrefix(c.Challenge(), tt.wantChal) {
			t.Errorf("%s: challenge of %v: want one starting %q", tt.what, err, tt.wantChal)
		}
	}
	if _, err := a.Authorize(request("GET", alice), repo, Pull|Push); err == nil || strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("two actions at once: got %v, want an unknown action error", err)
	}
}

func TestNewAuthorizerNeedsRouter(t *testing.T) {
	if _, err := NewAuthorizer(testSection(t, ""), nil); err == nil {
		t.Error("NewAuthorizer without a router: got no error")
	}
}

// Too many failed logins are refused with TOOMANYREQUESTS and a
// RetryAfter, and a reload keeps counting where the old policy was.
func TestFailedLoginsOutliveReload(t *testing.T) {
	logins, err := NewLoginLimiter(WithLimits(2, 100, DefaultLoginWindow))
	if err != nil {
		t.Fatal(err)
	}
	section := testSection(t, "")
	a, err := NewAuthorizer(section, testRouter(t), WithLoginLimiter(logins))
	if err != nil {
		t.Fatal(err)
	}
	wrong := basicHeader("alice", "nope")
	for range 2 {
		if _, err := a.Authorize(request("GET", wrong), "", 0); !errors.Is(err, ocierr.Unauthorized) {
			t.Fatalf("a wrong password: got %v, want UNAUTHORIZED", err)
		}
	}
	b, err := a.Reload(section)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Authorize(request("GET", basicHeader("alice", testUsers["alice"])), "", 0)
	var ra interface{ RetryAfter() time.Duration }
	if !errors.Is(err, ocierr.TooManyRequests) || !errors.As(err, &ra) || ra.RetryAfter() < time.Second {
		t.Errorf("the right password after two wrong ones and a reload: got %v, want TOOMANYREQUESTS with a RetryAfter", err)
	}
}

// The token endpoint issues a token that grants what the rules allow,
// and that Authorize takes; the API then challenges with Bearer naming
// the scope a request needs.
func TestServeTokenAndBearer(t *testing.T) {
	tok, key := tokenSection(t)
	a, err := NewAuthorizer(testSection(t, tok), testRouter(t))
	if err != nil {
		t.Fatal(err)
	}
	if !a.IssuesTokens() {
		t.Fatal("IssuesTokens: false with auth.token set")
	}
	r := httptest.NewRequest("GET", TokenPath+"?service=cairn&scope=repository:registry.internal/team/app:pull,push&scope=repository:alpine:pull", nil)
	r.Header.Set("Authorization", basicHeader("bob", testUsers["bob"]))
	w := httptest.NewRecorder()
	a.ServeToken(w, r)
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /token as bob: %d %q, want 200 with Cache-Control: no-store\n%s", w.Code, w.Header().Get("Cache-Control"), w.Body)
	}
	var resp TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := FormatScopes(g.Access), "repository:registry.internal/team/app:pull repository:docker.io/library/alpine:pull"; got != want {
		t.Errorf("bob's token grants %s, want %s (no push, canonical names)", got, want)
	}
	bearer := "Bearer " + resp.Token
	if user, err := a.Authorize(request("GET", bearer), "registry.internal/team/app", Pull); err != nil || user != "bob" {
		t.Errorf("pull with bob's token: got %q, %v, want bob allowed", user, err)
	}
	_, err = a.Authorize(request("GET", bearer), "registry.internal/team/app", Push)
	if !errors.Is(err, ocierr.Denied) {
		t.Errorf("push with bob's token: got %v, want DENIED (the rules refuse bob)", err)
	}
	_, err = a.Authorize(request("GET", ""), "registry.internal/team/app", Push)
	var c interface{ Challenge() string }
	want := `Bearer realm="http://example.com/token",service="cairn",scope="repository:registry.internal/team/app:push"`
	if !errors.As(err, &c) || c.Challenge() != want {
		t.Errorf("anonymous push: got %v, want the challenge %s", err, want)
	}
}

func TestServeTokenRefusals(t *testing.T) {
	tok, _ := tokenSection(t)
	a, err := NewAuthorizer(testSection(t, tok), testRouter(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		method, query, authz string
		status               int
		code                 string
	}{
		{"POST", "", "", http.StatusMethodNotAllowed, "UNSUPPORTED"},
		{"GET", "service=other", "", http.StatusBadRequest, "INVALID_REQUEST"},
		{"GET", "scope=repository:a:steal", "", http.StatusBadRequest, "INVALID_REQUEST"},
		{"GET", "", basicHeader("alice", "nope"), http.StatusUnauthorized, "UNAUTHORIZED"},
	} {
		r := httptest.NewRequest(tt.method, TokenPath+"?"+tt.query, nil)
		if tt.authz != "" {
			r.Header.Set("Authorization", tt.authz)
		}
		w := httptest.NewRecorder()
		a.ServeToken(w, r)
		if w.Code != tt.status || !strings.Contains(w.Body.String(), `"code":"`+tt.code+`"`) {
			t.Errorf("%s /token?%s: %d %s, want %d with %s", tt.method, tt.query, w.Code, w.Body, tt.status, tt.code)
		}
	}
	basic, err := NewAuthorizer(testSection(t, ""), testRouter(t))
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if basic.ServeToken(w, httptest.NewRequest("GET", TokenPath, nil)); w.Code != http.StatusNotFound || basic.IssuesTokens() {
		t.Errorf("/token without auth.token: %d, IssuesTokens %v, want 404 and false", w.Code, basic.IssuesTokens())
	}
}

// certUser: the leaf's common name, else its first DNS name; nobody
// without a verified chain (a presented but unverified certificate).
func TestCertUser(t *testing.T) {
	leaf := func(cn string, dns ...string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
	}
	tests := []struct {
		what  string
		state *tls.ConnectionState
		want  string
	}{
		{"plain HTTP", nil, ""},
		{"TLS without a client certificate", &tls.ConnectionState{}, ""},
		{"unverified certificate", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf("alice")}}, ""},
		{"common name", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf("alice", "other")}}}, "alice"},
		{"DNS name", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf("", "runner-1", "runner-2")}}}, "runner-1"},
		{"neither", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf("")}}}, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.TLS = tt.state
		if got := certUser(r); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.what, got, tt.want)
		}
	}
}
