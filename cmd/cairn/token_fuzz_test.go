package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cairn-mirror/cairn/auth"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/registry"
)

// fuzzAuth is the authorizer cairn serve builds for an auth: section with
// htpasswd users (push_test.go) and auth.token, without a running node.
func fuzzAuth(f *testing.F) (*apiAuth, *auth.Verifier) {
	dir := f.TempDir()
	keyFile, key := tokenKey(f)
	section := fmt.Sprintf(`auth:
  htpasswd_file: %q
  token:
    key_file: %q
  access:
    - users: [alice]
      repositories: ["registry.internal/**"]
      actions: [pull, push]`, writeHtpasswd(f), keyFile)
	cfg := testConfig(f, dir, "127.0.0.1:9", "127.0.0.1:9", section)
	var routes []route.Namespace
	for _, u := range cfg.Upstreams {
		routes = append(routes, routeNamespace(u))
	}
	router, err := route.NewRouter(routes)
	if err != nil {
		f.Fatal(err)
	}
	logins, err := auth.NewLoginLimiter()
	if err != nil {
		f.Fatal(err)
	}
	a, err := newAPIAuth(cfg.Auth, router, logins, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	v, err := auth.NewVerifier(key, auth.WithService("cairn"))
	if err != nil {
		f.Fatal(err)
	}
	return a, v
}

// GET /token with any query and Authorization header: a known status, and
// a token only ever grants what the rules allow its subject.
func FuzzTokenRequest(f *testing.F) {
	a, v := fuzzAuth(f)
	f.Add("service=cairn&scope=repository:registry.internal/team/app:pull,push", "Basic YWxpY2U6YWxpY2Utc2VjcmV0")
	f.Add("service=cairn&scope=repository:library/alpine:pull&scope=repository:x:*", "")
	f.Add("scope=repository:registry.internal/a:delete", "Basic Og==")
	f.Add("service=other", "Bearer x.y.z")
	f.Fuzz(func(t *testing.T, query, authz string) {
		r := httptest.NewRequest("GET", "/token", nil)
		r.URL.RawQuery = query
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		a.serveToken(w, r)
		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests:
			return
		default:
			t.Fatalf("status %d for %q / %q", w.Code, query, authz)
		}
		var tr auth.TokenResponse
		if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
			t.Fatalf("200 with a body that is no token response: %v", err)
		}
		g, err := v.Verify(tr.Token)
		if err != nil {
			t.Fatalf("issued token does not verify: %v", err)
		}
		for _, s := range g.Access {
			for _, act := range []auth.Action{auth.Pull, auth.Push, auth.Delete, auth.Replicate} {
				if s.Actions.Has(act) && !a.rules.Allowed(g.Subject, s.Name, act) {
					t.Fatalf("token grants %s on %s to %q, which the rules do not", act, s.Name, g.Subject)
				}
			}
		}
	})
}

// The API's Authorization header, whatever it holds: a push is allowed
// only to a user the rules allow it.
func FuzzAuthorizationHeader(f *testing.F) {
	a, _ := fuzzAuth(f)
	f.Add("Basic YWxpY2U6YWxpY2Utc2VjcmV0")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Add("Basic Og==")
	f.Add("bearer  ")
	const repo = "registry.internal/team/app"
	f.Fuzz(func(t *testing.T, authz string) {
		r := httptest.NewRequest("POST", "/v2/"+repo+"/blobs/uploads/", nil)
		r.Header.Set("Authorization", authz)
		user, err := a.Authorize(r, repo, registry.ActionPush)
		if err == nil && !a.rules.Allowed(user, repo, auth.Push) {
			t.Fatalf("push allowed to %q with %q", user, authz)
		}
	})
}
