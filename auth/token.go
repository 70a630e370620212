package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The defaults of NewIssuer and NewVerifier.
const (
	// DefaultService is the token audience (aud) and challenge service.
	DefaultService = "cairn"
	// DefaultTokenExpiry: Docker clients fetch a token per operation and
	// refresh it; a quarter hour outlives a large pull, and bounds how
	// long a token outlives a change of the rules.
	DefaultTokenExpiry = 15 * time.Minute
	// DefaultLeeway tolerates clock skew between the nodes of a site.
	DefaultLeeway = 30 * time.Second
	// DefaultTokenCacheSize bounds the verified tokens remembered: tokens
	// are shared by a client's requests, so a few thousand cover many
	// concurrent clients.
	DefaultTokenCacheSize = 4096
	// MaxTokenLen bounds a token Verify reads (and one Issue writes).
	MaxTokenLen = 16 << 10
)

// ErrInvalidToken is the error of every token Verify refuses.
var ErrInvalidToken = errors.New("invalid token")

// TokenOption configures NewIssuer and NewVerifier; each says which it
// applies to.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	service, issuer string
	expiry, leeway  time.Duration
	cacheSize       int
	now             func() time.Time
}

// WithService sets the service, the tokens' aud (default DefaultService).
// Issuer and Verifier.
func WithService(s string) TokenOption { return func(o *tokenOptions) { o.service = s } }

// WithIssuerName sets the tokens' iss (default the service). Issuer and
// Verifier.
func WithIssuerName(s string) TokenOption { return func(o *tokenOptions) { o.issuer = s } }

// WithExpiry sets how long an issued token lives (default
// DefaultTokenExpiry). Issuer only.
func WithExpiry(d time.Duration) TokenOption { return func(o *tokenOptions) { o.expiry = d } }

// WithLeeway sets the clock skew tolerated on exp and nbf (default
// DefaultLeeway). Verifier only.
func WithLeeway(d time.Duration) TokenOption { return func(o *tokenOptions) { o.leeway = d } }

// WithTokenCacheSize sets how many verified tokens are remembered (default
// DefaultTokenCacheSize); 0 remembers none. Verifier only.
func WithTokenCacheSize(n int) TokenOption { return func(o *tokenOptions) { o.cacheSize = n } }

// WithTokenClock sets the clock (default time.Now). Issuer and Verifier.
func WithTokenClock(now func() time.Time) TokenOption { return func(o *tokenOptions) { o.now = now } }

func newTokenOptions(key *Key, opts []TokenOption) (tokenOptions, error) {
	o := tokenOptions{service: DefaultService, expiry: DefaultTokenExpiry, leeway: DefaultLeeway,
		cacheSize: DefaultTokenCacheSize, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.issuer == "" {
		o.issuer = o.service
	}
	switch {
	case key == nil:
		return o, errors.New("auth: nil token key")
	case o.service == "":
		return o, errors.New("auth: empty token service")
	case o.expiry <= 0:
		return o, fmt.Errorf("auth: token expiry %v, want > 0", o.expiry)
	case o.leeway < 0:
		return o, fmt.Errorf("auth: token leeway %v is negative", o.leeway)
	case o.cacheSize < 0:
		return o, fmt.Errorf("auth: token cache size %d is negative", o.cacheSize)
	case o.now == nil:
		return o, errors.New("auth: nil clock")
	}
	return o, nil
}

// header and claims are the JWT's two JSON parts, in Docker
// distribution's token format.
type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type claims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	Expiry    int64            `json:"exp"`
	NotBefore int64            `json:"nbf"`
	IssuedAt  int64            `json:"iat"`
	ID        string           `json:"jti"`
	Access    []resourceAction `json:"access"`
}

type resourceAction struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Issuer signs tokens granting what the Rules allow. Safe for concurrent
// use.
type Issuer struct {
	key   *Key
	rules *Rules
	o     tokenOptions
}

// NewIssuer returns an Issuer signing with key, granting from rules.
// Options: WithService, WithIssuerName, WithExpiry, WithTokenClock.
func NewIssuer(key *Key, rules *Rules, opts ...TokenOption) (*Issuer, error) {
	o, err := newTokenOptions(key, opts)
	if err != nil {
		return nil, err
	}
	if rules == nil {
		return nil, errors.New("auth: nil rules")
	}
	return &Issuer{key: key, rules: rules, o: o}, nil
}

// Issued is a signed token and what it grants.
type Issued struct {
	Token     string
	Granted   []Scope // per requested scope, the actions granted (maybe none)
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// TokenResponse is the JSON body of a token endpoint's answer (Docker's
// token spec; access_token for OAuth 2 clients).
type TokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// Response returns the token endpoint's JSON body for t.
func (t *Issued) Response() TokenResponse {
	return TokenResponse{Token: t.Token, AccessToken: t.Token,
		ExpiresIn: int(t.ExpiresAt.Sub(t.IssuedAt) / time.Second), IssuedAt: t.IssuedAt.UTC().Format(time.RFC3339)}
}

// Issue signs a token for user ("" for an anonymous client) granting, for
// each scope, the requested actions the rules allow user on the scope's
// name: fewer than asked when the rules allow fewer, never more. Names
// must be canonical, as the rules are. More than MaxScopes scopes is an
// error. user must have been authenticated by the caller.
func (is *Issuer) Issue(user string, scopes []Scope) (*Issued, error) {
	if len(scopes) > MaxScopes {
		return nil, fmt.Errorf("auth: %d scopes, want at most %d", len(scopes), MaxScopes)
	}
	now := is.o.now().Truncate(time.Second)
	out := &Issued{IssuedAt: now, ExpiresAt: now.Add(is.o.expiry)}
	c := claims{Issuer: is.o.issuer, Subject: user, Audience: is.o.service, IssuedAt: now.Unix(),
		NotBefore: now.Unix(), Expiry: out.ExpiresAt.Unix(), ID: newJTI(), Access: []resourceAction{}}
	for _, s := range scopes {
		if err := checkScopeName(s.Name); err != nil {
			return nil, fmt.Errorf("auth: scope %q: %w", s.Name, err)
		}
		g := Scope{Name: s.Name, Actions: s.Actions & is.rules.Actions(user, s.Name)}
		out.Granted = append(out.Granted, g)
		c.Access = append(c.Access, resourceAction{Type: ScopeRepository, Name: g.Name, Actions: actionNames(g.Actions)})
	}
	tok, err := sign(is.key, c)
	if err != nil {
		return nil, err
	}
	out.Token = tok
	return out, nil
}

func actionNames(s Actions) []string {
	names := []string{}
	for _, x := range allActions {
		if s.Has(x.a) {
			names = append(names, x.name)
		}
	}
	return names
}

func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

var jwtB64 = base64.RawURLEncoding.Strict()

func sign(k *Key, c claims) (string, error) {
	h, err := json.Marshal(header{Alg: k.alg, Typ: "JWT", Kid: k.id})
	if err != nil {
		return "", fmt.Errorf("auth: token header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("auth: token claims: %w", err)
	}
	input := jwtB64.EncodeToString(h) + "." + jwtB64.EncodeToString(p)
	tok := input + "." + jwtB64.EncodeToString(k.sign([]byte(input)))
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("auth: token of %d bytes, want at most %d", len(tok), MaxTokenLen)
	}
	return tok, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func hmacEqual(a, b []byte) bool { return hmac.Equal(a, b) }
