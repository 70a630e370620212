package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// basicRealm is the Basic realm cairn challenges with.
const basicRealm = "cairn"

// Authorizer is the API's access policy, built from the auth: section:
// htpasswd users, the access rules, tokens when auth.token is set (and
// the token endpoint that issues them, ServeToken), mutual TLS users, and
// the failed-login limiter in front of every password check. It is
// immutable: a reload builds a new one (Reload). Safe for concurrent use.
//
// Its Authorize has the shape of the registry's Authorizer, with this
// package's Action; cmd/cairn maps one action type onto the other.
type Authorizer struct {
	users  *Authenticator // nil: no htpasswd_file, nobody can log in
	rules  *Rules
	token  *tokenAuth // nil: no auth.token, Basic only
	logins *LoginLimiter
	// proxies are auth.trusted_proxies: whose X-Forwarded-For names the
	// client.
	proxies []netip.Prefix
	router  *route.Router
	log     *slog.Logger
}

// AuthorizerOption configures NewAuthorizer.
type AuthorizerOption func(*Authorizer)

// WithLoginLimiter counts failed logins in l, the process's one limiter,
// kept across reloads. Default: a new LoginLimiter with its defaults.
func WithLoginLimiter(l *LoginLimiter) AuthorizerOption {
	return func(a *Authorizer) { a.logins = l }
}

// WithLogger logs the token endpoint's issued and refused tokens (user,
// status, remote address; never a password or a token). Default: nothing.
func WithLogger(log *slog.Logger) AuthorizerOption {
	return func(a *Authorizer) { a.log = log }
}

// NewAuthorizer builds the policy of the auth: section c, which has its
// defaults applied (anonymous is [pull] when absent) and was validated. It
// reads the htpasswd file and the token key. router is the API's: the
// token endpoint canonicalises the names of the scopes clients ask for
// with it, as the registry does a request's name.
func NewAuthorizer(c config.Auth, router *route.Router, opts ...AuthorizerOption) (*Authorizer, error) {
	if router == nil {
		return nil, errors.New("auth: an authorizer needs the API's router")
	}
	a := &Authorizer{router: router}
	for _, o := range opts {
		o(a)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.logins == nil {
		l, err := NewLoginLimiter()
		if err != nil {
			return nil, err
		}
		a.logins = l
	}
	var err error
	if a.rules, err = rulesOf(c); err != nil {
		return nil, err
	}
	if a.proxies, err = ParsePrefixes(c.TrustedProxies); err != nil {
		return nil, fmt.Errorf("auth.trusted_proxies: %w", err)
	}
	if c.HtpasswdFile != "" {
		h, err := LoadHtpasswd(c.HtpasswdFile)
		if err != nil {
			return nil, err
		}
		if a.users, err = NewAuthenticator(h); err != nil {
			return nil, err
		}
	}
	if c.Token != nil {
		if a.token, err = newTokenAuth(*c.Token, a.rules); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Reload builds the policy of a new auth: section c with a's router,
// login limiter and logger: failed-login counts go on where they were.
// a is left as it is.
func (a *Authorizer) Reload(c config.Auth) (*Authorizer, error) {
	return NewAuthorizer(c, a.router, WithLoginLimiter(a.logins), WithLogger(a.log))
}

func rulesOf(c config.Auth) (*Rules, error) {
	anon, err := ParseActions(c.Anonymous)
	if err != nil {
		return nil, fmt.Errorf("auth.anonymous: %w", err)
	}
	rules := make([]Rule, 0, len(c.Access))
	for i, r := range c.Access {
		acts, err := ParseActions(r.Actions)
		if err != nil {
			return nil, fmt.Errorf("auth.access[%d].actions: %w", i, err)
		}
		rules = append(rules, Rule{Users: r.Users, Repositories: r.Repositories, Actions: acts})
	}
	return NewRules(anon, rules)
}

// identity is who a request's credentials name: user "" is anonymous;
// grant is set when they were a token (and then bounds what user may do).
type identity struct {
	user  string
	grant *Grant
}

// Authorize returns the user ("" for an anonymous client) when r may take
// act on the canonical repository repo; repo "" asks about the API itself
// (GET /v2/). Credentials that are sent must be right, whatever the
// action; the password or token is never logged or returned. A token
// allows what it grants and the rules in force still allow; Basic
// credentials, a verified client certificate or none allow what the
// rules do.
//
// Errors wrap ocierr.Unauthorized (credentials missing or wrong, with the
// WWW-Authenticate challenge to send: a Challenge method), ocierr.Denied
// (authenticated, not allowed) or ocierr.TooManyRequests (too many failed
// logins from the client: a RetryAfter method); an act that is not one
// action, for a repo, is an error with no OCI code.
func (a *Authorizer) Authorize(r *http.Request, repo string, act Action) (string, error) {
	if repo != "" && !act.valid() {
		return "", fmt.Errorf("unknown action %v", act)
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
func (a *Authorizer) ping(r *http.Request, id identity) (string, error) {
	if id.user == "" && id.grant == nil && (a.users != nil || a.token != nil || !a.rules.AnonymousGrantsAny()) {
		return "", a.unauthorized(r, "", 0, fmt.Errorf("credentials required: %w", ocierr.Unauthorized))
	}
	return id.user, nil
}

// authorizeToken checks a verified token's grant against the current
// rules. A token without the action gets a new challenge naming it, unless
// the rules would refuse the token's user anyway: then a fresh token could
// not help, and it is Denied.
func (a *Authorizer) authorizeToken(r *http.Request, id identity, repo string, act Action) (string, error) {
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
func (a *Authorizer) identify(r *http.Request, repo string, act Action) (identity, error) {
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
// address, or from that address (see LoginLimiter): then the error is a
// tooManyLogins, and no password is checked. Unknown users and wrong
// passwords count alike.
func (a *Authorizer) basicUser(r *http.Request, h string) (string, error) {
	u, p, ok := ParseBasic(h)
	if !ok {
		return "", fmt.Errorf("malformed Basic credentials: %w", ocierr.Unauthorized)
	}
	client := ClientAddr(r, a.proxies)
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
func (a *Authorizer) unauthorized(r *http.Request, repo string, act Action, err error) error {
	if a.token == nil {
		return challenged{err, Challenge(basicRealm)}
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
