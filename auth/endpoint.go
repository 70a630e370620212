package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/route"
)

// TokenPath is where the API listener serves Docker token auth's token
// endpoint (ServeToken): the realm of the challenges unless auth.token
// names another.
const TokenPath = "/token"

// tokenAuth is auth.token wired: the issuer of /token, the verifier of
// Bearer credentials, and what the challenges say. Safe for concurrent use.
type tokenAuth struct {
	issuer   *Issuer
	verifier *Verifier
	realm    string // "": this node's /token, as the client reached it
	service  string
}

// newTokenAuth loads the signing key and builds the issuer (granting from
// rules) and the verifier. t has its defaults applied.
func newTokenAuth(t config.Token, rules *Rules) (*tokenAuth, error) {
	key, err := LoadKey(t.KeyFile)
	if err != nil {
		return nil, err
	}
	opts := []TokenOption{WithService(t.Service)}
	if t.Expiry > 0 {
		opts = append(opts, WithExpiry(t.Expiry.D()))
	}
	is, err := NewIssuer(key, rules, opts...)
	if err != nil {
		return nil, err
	}
	v, err := NewVerifier(key, opts...)
	if err != nil {
		return nil, err
	}
	return &tokenAuth{issuer: is, verifier: v, realm: t.Realm, service: t.Service}, nil
}

// realmFor is the configured realm, or the token endpoint at the scheme
// and host the client used for r.
func (t *tokenAuth) realmFor(r *http.Request) string {
	if t.realm != "" {
		return t.realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + TokenPath
}

// challenge is the Bearer challenge of a request that needs act on the
// canonical repository repo (none for "" and 0). The scope names the
// canonical repository (docker.io/library/alpine), so that a token says
// which namespace it covers; clients echo it to /token, which takes
// canonical names as well as the short ones clients compute themselves.
func (t *tokenAuth) challenge(r *http.Request, repo string, act Action) string {
	b := Bearer{Realm: t.realmFor(r), Service: t.service}
	if repo != "" && act != 0 {
		b.Scopes = []Scope{{Name: repo, Actions: NewActions(act)}}
	}
	return b.String()
}

// IssuesTokens reports whether auth.token is set: then ServeToken serves
// the token endpoint, and the API challenges with Bearer.
func (a *Authorizer) IssuesTokens() bool { return a.token != nil }

// tokenError is a refused token request: the status and what to say.
type tokenError struct {
	status    int
	challenge string        // WWW-Authenticate of a 401
	retry     time.Duration // Retry-After of a 429
	err       error
}

func (e *tokenError) Error() string { return e.err.Error() }

// ServeToken answers GET TokenPath (Docker's token spec): the client's
// Basic credentials (none, or empty ones: anonymous, or the verified
// client certificate's user), the service it asks for (this one, or
// none) and the scopes it wants, canonicalised through the API's router.
// The token grants the asked actions the rules allow; scopes naming no
// configured namespace are left out. Refusals are JSON errors: 400, 401
// with a Basic challenge, 405, or 429 with Retry-After after too many
// failed logins. Without auth.token (IssuesTokens false) it answers 404.
func (a *Authorizer) ServeToken(w http.ResponseWriter, r *http.Request) {
	if a.token == nil {
		http.NotFound(w, r)
		return
	}
	user, resp, err := a.issue(r)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = &tokenError{status: http.StatusInternalServerError, err: err}
		}
		a.log.Info("token refused", "user", user, "status", te.status, "remote", r.RemoteAddr, "err", te.err.Error())
		if te.challenge != "" {
			w.Header().Set("WWW-Authenticate", te.challenge)
		}
		if te.retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(te.retry/time.Second)))
		}
		writeTokenJSON(w, te.status, map[string]any{"errors": []map[string]string{{"code": tokenErrorCode(te.status), "message": te.err.Error()}}})
		return
	}
	a.log.Info("token issued", "user", user, "remote", r.RemoteAddr)
	writeTokenJSON(w, http.StatusOK, resp)
}

func tokenErrorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusBadRequest:
		return "INVALID_REQUEST"
	case http.StatusMethodNotAllowed:
		return "UNSUPPORTED"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	}
	return "UNKNOWN"
}

// issue authenticates and issues; errors are *tokenError but for the
// issuer's own failures.
func (a *Authorizer) issue(r *http.Request) (string, TokenResponse, error) {
	if r.Method != http.MethodGet {
		return "", TokenResponse{}, &tokenError{status: http.StatusMethodNotAllowed, err: fmt.Errorf("method %s, want GET", r.Method)}
	}
	user, err := a.tokenUser(r)
	var tooMany tooManyLogins
	if errors.As(err, &tooMany) {
		return "", TokenResponse{}, &tokenError{status: http.StatusTooManyRequests, retry: tooMany.RetryAfter(), err: err}
	}
	if err != nil {
		return "", TokenResponse{}, &tokenError{status: http.StatusUnauthorized, challenge: Challenge(basicRealm), err: err}
	}
	q := r.URL.Query()
	if s := q.Get("service"); s != "" && s != a.token.service {
		return user, TokenResponse{}, &tokenError{status: http.StatusBadRequest, err: fmt.Errorf("service %.80q, want %q", s, a.token.service)}
	}
	scopes, err := ParseScopeParams(q["scope"])
	if err != nil {
		return user, TokenResponse{}, &tokenError{status: http.StatusBadRequest, err: err}
	}
	is, err := a.token.issuer.Issue(user, a.canonical(scopes))
	if err != nil {
		return user, TokenResponse{}, &tokenError{status: http.StatusBadRequest, err: err}
	}
	return user, is.Response(), nil
}

// tokenUser checks the token request's Basic credentials. Without any,
// or with empty ones, the user is the verified client certificate's
// (mutual TLS), or "".
func (a *Authorizer) tokenUser(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" || isEmptyBasic(h) {
		return certUser(r), nil
	}
	return a.basicUser(r, h)
}

// canonical maps the scopes' client names to canonical repository names
// (library/alpine to docker.io/library/alpine), merging scopes that name
// the same repository and dropping those no configured namespace holds.
func (a *Authorizer) canonical(scopes []Scope) []Scope {
	out := make([]Scope, 0, len(scopes))
	at := map[string]int{}
	for _, s := range scopes {
		if route.ValidName(s.Name) != nil {
			continue
		}
		repo, err := a.router.Resolve(s.Name, "")
		if err != nil {
			continue
		}
		name := repo.Canonical()
		if i, ok := at[name]; ok {
			out[i].Actions |= s.Actions
			continue
		}
		at[name] = len(out)
		out = append(out, Scope{Name: name, Actions: s.Actions})
	}
	return out
}

func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v) // plain structs and maps: never fails
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
