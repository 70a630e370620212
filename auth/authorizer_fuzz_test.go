package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fuzzAuthorizer is the policy of an auth: section with htpasswd users and
// auth.token (testSection), and a verifier of its tokens.
func fuzzAuthorizer(f *testing.F) (*Authorizer, *Verifier) {
	tok, key := tokenSection(f)
	a, err := NewAuthorizer(testSection(f, tok), testRouter(f))
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(key, WithService("cairn"))
	if err != nil {
		f.Fatal(err)
	}
	return a, v
}

// GET /token with any query and Authorization header: a known status, and
// a token only ever grants what the rules allow its subject.
func FuzzTokenRequest(f *testing.F) {
	a, v := fuzzAuthorizer(f)
	f.Add("service=cairn&scope=repository:registry.internal/team/app:pull,push", "Basic YWxpY2U6YWxpY2Utc2VjcmV0")
	f.Add("service=cairn&scope=repository:library/alpine:pull&scope=repository:x:*", "")
	f.Add("scope=repository:registry.internal/a:delete", "Basic Og==")
	f.Add("service=other", "Bearer x.y.z")
	f.Fuzz(func(t *testing.T, query, authz string) {
		r := httptest.NewRequest("GET", TokenPath, nil)
		r.URL.RawQuery = query
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		a.ServeToken(w, r)
		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests:
			return
		default:
			t.Fatalf("status %d for %q / %q", w.Code, query, authz)
		}
		var tr TokenResponse
		if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
			t.Fatalf("200 with a body that is no token response: %v", err)
		}
		g, err := v.Verify(tr.Token)
		if err != nil {
			t.Fatalf("issued token does not verify: %v", err)
		}
		for _, s := range g.Access {
			for _, act := range []Action{Pull, Push, Delete, Replicate} {
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
	a, _ := fuzzAuthorizer(f)
	f.Add("Basic YWxpY2U6YWxpY2Utc2VjcmV0")
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Add("Basic Og==")
	f.Add("bearer  ")
	const repo = "registry.internal/team/app"
	f.Fuzz(func(t *testing.T, authz string) {
		r := httptest.NewRequest("POST", "/v2/"+repo+"/blobs/uploads/", nil)
		r.Header.Set("Authorization", authz)
		user, err := a.Authorize(r, repo, Push)
		if err == nil && !a.rules.Allowed(user, repo, Push) {
			t.Fatalf("push allowed to %q with %q", user, authz)
		}
	})
}
