package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/cairn-mirror/cairn/auth"
	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/registry"
)

// realm is the Basic realm cairn challenges with.
const realm = "cairn"

// apiAuth adapts the auth package (htpasswd users, access rules, and
// tokens when auth.token is set) to the registry's Authorizer, and serves
// the token endpoint (token.go). Safe for concurrent use.
type apiAuth struct {
	users *auth.Authenticator // nil: no htpasswd_file, nobody can log in
	rules *auth.Rules
	token *tokenAuth // nil: no auth.token, Basic only
	// logins limits failed Basic checks per (user, client address) and
	// per client address; it outlives reloads of the auth section.
	logins *auth.LoginLimiter
	// proxies are auth.trusted_proxies: whose X-Forwarded-For names the
	// client.
	proxies []netip.Prefix
	// router is the API's, kept for the reloads that rebuild this.
	router *route.Router
}

// newAPIAuth builds the authorizer from the auth: section (defaults
// applied: anonymous is [pull] when absent). router is the API's: the
// token endpoint canonicalises scope names with it. logins counts failed
// logins; it is the process's one limiter, kept across reloads.
func newAPIAuth(a config.Auth, router *route.Router, logins *auth.LoginLimiter, log *slog.Logger) (*apiAuth, error) {
	rs, err := newRules(a)
	if err != nil {
		return nil, err
	}
	proxies, err := auth.ParsePrefixes(a.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("auth.trusted_proxies: %w", err)
	}
	out := &apiAuth{rules: rs, logins: logins, proxies: proxies, router: router}
	if a.HtpasswdFile != "" {
		h, err := auth.LoadHtpasswd(a.HtpasswdFile)
		if err != nil {
			return nil, err
		}
		if out.users, err = auth.NewAuthenticator(h); err != nil {
			return nil, err
		}
	}
	if a.Token != nil {
		if out.token, err = newTokenAuth(*a.Token, rs, router, log); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func newRules(a config.Auth) (*auth.Rules, error) {
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
	return auth.NewRules(anon, rules)
}

var actionOf = map[registry.Action]auth.Action{
	registry.ActionPull:      auth.Pull,
	registry.ActionPush:      auth.Push,
	registry.ActionDelete:    auth.Delete,
	registry.ActionReplicate: auth.Replicate,
}

// identity is who a request's credentials name: user "" is anonymous;
// grant is set when they were a token (and then bounds what user may do).
type identity struct {
	user  string
	grant *auth.Grant
}

// Authorize implements registry.Authorizer. Credentials that are sent must
// be right, whatever the action; the password or token is never logged or
// returned. A token allows what it grants (the rules were applied when it
// was issued); Basic credentials allow what the rules do.
func (a *apiAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	act, ok := actionOf[action]
	if !ok && repo != "" {
		return "", fmt.Errorf("unknown action %v", action)
	}
	id, err := a.identify(r, repo, act)
	if err != nil {
		return "", err
	}
	if repo == "" {
		return a.ping(r, id)
	}
	if id.grant != nil {
		return a.authorizeToken(r, id, repo, act)
	}
	if a.rules.Allowed(id.user, repo, act) {
		return id.user, nil
	}
	switch {
	case id.user != "":
		return "", fmt.Errorf("user %q may not %s %s: %w", id.user, act, repo, ocierr.Denied)
	case a.users == nil && a.token == nil:
		return "", a.unauthorized(r, repo, act, fmt.Errorf("%s on %s needs credentials, and this cairn node has no users (no auth.htpasswd_file): %w",
			act, repo, ocierr.Unauthorized))
	}
	return "", a.unauthorized(r, repo, act, fmt.Errorf("%s on %s needs credentials: %w", act, repo, ocierr.Unauthorized))
}

// ping answers GET /v2/, the request clients send first. With users
// configured, an anonymous ping is challenged even where anonymous pulls
// are allowed: that 401 is how a client (skopeo, podman, docker) learns to
// send its credentials at all. Anonymous clients go on without
// credentials, or with empty ones, and may still pull. With token auth,
// every anonymous ping is challenged: it is how clients learn the realm,
// where anonymous clients get their (pull) tokens too.
func (a *apiAuth) ping(r *http.Request, id identity) (string, error) {
	if id.user == "" && id.grant == nil && (a.users != nil || a.token != nil || !a.rules.AnonymousGrantsAny()) {
		return "", a.unauthorized(r, "", 0, fmt.Errorf("credentials required: %w", ocierr.Unauthorized))
	}
	return id.user, nil
}

// authorizeToken checks a verified token's grant against the current
// rules. A token without the action gets a new challenge naming it, unless
// the rules would refuse the token's user anyway: then a fresh token could
// not help, and it is Denied.
func (a *apiAuth) authorizeToken(r *http.Request, id identity, repo string, act auth.Action) (string, error) {
	// The rules are asked too: a token issued before a reload took the
	// access away (a rule, or anonymous pulls through a namespace's
	// credentials) must not outlive the change.
	if id.grant.Allows(repo, act) && a.rules.Allowed(id.user, repo, act) {
		return id.user, nil
	}
	if id.user != "" && !a.rules.Allowed(id.user, repo, act) {
		return "", fmt.Errorf("user %q may not %s %s: %w", id.user, act, repo, ocierr.Denied)
	}
	return "", a.unauthorized(r, repo, act, fmt.Errorf("the token does not grant %s on %s: %w", act, repo, ocierr.Unauthorized))
}

// identify checks the request's credentials: a Bearer token when token
// auth is on, or Basic credentials. No credentials, or empty Basic ones
// (what a client challenged but without credentials sends, e.g. skopeo
// --no-creds), are the verified client certificate's user (mutual TLS),
// or anonymous. Wrong credentials are challenged for act on repo; too
// many wrong ones are refused (429) before they are checked.
func (a *apiAuth) identify(r *http.Request, repo string, act auth.Action) (identity, error) {
	h := r.Header.Get("Authorization")
	if h == "" || isEmptyBasic(h) {
		return identity{user: certUser(r)}, nil
	}
	if tok, ok := bearerToken(h); ok && a.token != nil {
		g, err := a.token.verifier.Verify(tok)
		if err != nil {
			return identity{}, a.unauthorized(r, repo, act, fmt.Errorf("%w: %w", err, ocierr.Unauthorized))
		}
		return identity{user: g.Subject, grant: g}, nil
	}
	u, err := a.basicUser(r, h)
	var tooMany tooManyLogins
	if errors.As(err, &tooMany) {
		return identity{}, err
	}
	if err != nil {
		return identity{}, a.unauthorized(r, repo, act, err)
	}
	return identity{user: u}, nil
}

// basicUser checks r's Basic credentials h (not empty ones) against the
// users, unless too many checks failed lately for the user from r's client
// address, or from that address (see auth.LoginLimiter): then the error
// is a tooManyLogins, and no password is checked. Unknown users and wrong
// passwords count alike.
func (a *apiAuth) basicUser(r *http.Request, h string) (string, error) {
	u, p, ok := auth.ParseBasic(h)
	if !ok {
		return "", fmt.Errorf("malformed Basic credentials: %w", ocierr.Unauthorized)
	}
	client := auth.ClientAddr(r, a.proxies)
	if retry, ok := a.logins.Begin(u, client); !ok {
		return "", tooManyLogins{retry}
	}
	if a.users == nil || !a.users.Check(u, p) {
		return "", fmt.Errorf("wrong user name or password: %w", ocierr.Unauthorized)
	}
	a.logins.Succeeded(u, client)
	return u, nil
}

// certUser is the user a request's verified client certificate names
// (mutual TLS, tls.client_ca_file): the leaf's subject common name, or
// its first DNS name when that is empty; "" without a verified chain.
func certUser(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if leaf.Subject.CommonName != "" {
		return leaf.Subject.CommonName
	}
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return ""
}

// unauthorized makes err carry the challenge to answer with: Basic, or
// with token auth a Bearer challenge naming what the request needed (act
// on repo; nothing for "" and 0).
func (a *apiAuth) unauthorized(r *http.Request, repo string, act auth.Action, err error) error {
	if a.token == nil {
		return challenged{err, auth.Challenge(realm)}
	}
	return challenged{err, a.token.challenge(r, repo, act)}
}

// challenged is an Unauthorized error with the WWW-Authenticate value to
// send.
type challenged struct {
	error
	challenge string
}

func (e challenged) Unwrap() error     { return e.error }
func (e challenged) Challenge() string { return e.challenge }

// isEmptyBasic reports Basic credentials of an empty user and password
// (base64 of ":").
func isEmptyBasic(h string) bool {
	scheme, cred, ok := strings.Cut(h, " ")
	return ok && strings.EqualFold(scheme, "basic") && cred == "Og=="
}

// bearerToken returns the token of a Bearer Authorization value.
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
