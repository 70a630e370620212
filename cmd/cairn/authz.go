package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/cairn-mirror/cairn/auth"
	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/registry"
)

// realm is the Basic realm cairn challenges with.
const realm = "cairn"

// apiAuth adapts the auth package (htpasswd users, access rules) to the
// registry's Authorizer. Safe for concurrent use.
type apiAuth struct {
	users *auth.Authenticator // nil: no htpasswd_file, nobody can log in
	rules *auth.Rules
}

// newAPIAuth builds the authorizer from the auth: section (defaults
// applied: anonymous is [pull] when absent).
func newAPIAuth(a config.Auth) (*apiAuth, error) {
	anon, err := auth.ParseActions(a.Anonymous)
	if err != nil {
		return nil, fmt.Errorf("auth.anonymous: %w", err)
	}
	rules := make([]auth.Rule, 0, len(a.Access))
	for i, r := range a.Access {
		acts, err := auth.ParseActions(r.Actions)
		if err != nil {
			return nil, fmt.Errorf("auth.access[%d].actions: %w", i, err)
		}
		rules = append(rules, auth.Rule{Users: r.Users, Repositories: r.Repositories, Actions: acts})
	}
	rs, err := auth.NewRules(anon, rules)
	if err != nil {
		return nil, err
	}
	out := &apiAuth{rules: rs}
	if a.HtpasswdFile != "" {
		h, err := auth.LoadHtpasswd(a.HtpasswdFile)
		if err != nil {
			return nil, err
		}
		if out.users, err = auth.NewAuthenticator(h); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var actionOf = map[registry.Action]auth.Action{
	registry.ActionPull:      auth.Pull,
	registry.ActionPush:      auth.Push,
	registry.ActionDelete:    auth.Delete,
	registry.ActionReplicate: auth.Replicate,
}

// Authorize implements registry.Authorizer. Credentials that are sent must
// be right, whatever the action; the password is never logged or returned.
func (a *apiAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	user, err := a.user(r)
	if err != nil {
		return "", err
	}
	if repo == "" {
		// GET /v2/, the ping clients send first. With users configured,
		// an anonymous ping is challenged even where anonymous pulls are
		// allowed: that 401 is how a client (skopeo, podman, docker)
		// learns to send its credentials at all. Anonymous clients go on
		// without credentials, or with empty ones, and may still pull.
		if user == "" && (a.users != nil || a.rules.Anonymous() == 0) {
			return "", unauthorized(fmt.Errorf("credentials required: %w", ocierr.Unauthorized))
		}
		return user, nil
	}
	act, ok := actionOf[action]
	if !ok {
		return "", fmt.Errorf("unknown action %v", action)
	}
	if a.rules.Allowed(user, repo, act) {
		return user, nil
	}
	switch {
	case user != "":
		return "", fmt.Errorf("user %q may not %s %s: %w", user, act, repo, ocierr.Denied)
	case a.users == nil:
		return "", unauthorized(fmt.Errorf("%s on %s needs credentials, and this cairn node has no users (no auth.htpasswd_file): anonymous clients may only %s: %w",
			act, repo, a.rules.Anonymous(), ocierr.Unauthorized))
	}
	return "", unauthorized(fmt.Errorf("%s on %s needs credentials: %w", act, repo, ocierr.Unauthorized))
}

// user checks the request's Basic credentials: "" without any, or with
// empty ones (what a client challenged but without credentials sends,
// e.g. skopeo --no-creds).
func (a *apiAuth) user(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" || isEmptyBasic(h) {
		return "", nil
	}
	u, p, ok := auth.ParseBasic(h)
	if !ok {
		return "", unauthorized(fmt.Errorf("malformed Basic credentials: %w", ocierr.Unauthorized))
	}
	if a.users == nil || !a.users.Check(u, p) {
		return "", unauthorized(fmt.Errorf("wrong user name or password: %w", ocierr.Unauthorized))
	}
	return u, nil
}

// challenged is an Unauthorized error that asks for Basic credentials.
type challenged struct{ error }

func (e challenged) Unwrap() error     { return e.error }
func (e challenged) Challenge() string { return auth.Challenge(realm) }

func unauthorized(err error) error { return challenged{err} }

// isEmptyBasic reports Basic credentials of an empty user and password
// (base64 of ":").
func isEmptyBasic(h string) bool {
	scheme, cred, ok := strings.Cut(h, " ")
	return ok && strings.EqualFold(scheme, "basic") && cred == "Og=="
}
