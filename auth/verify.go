package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Grant is what a verified token says: who (Subject, "" for anonymous),
// what (Access, one Scope per repository) and until when. It is immutable;
// Verify may return the same *Grant for the same token.
type Grant struct {
	Subject   string
	Access    []Scope
	ExpiresAt time.Time
}

// Allows reports whether the token grants action a on the canonical
// repository name.
func (g *Grant) Allows(name string, a Action) bool {
	for _, s := range g.Access {
		if s.Name == name && s.Actions.Has(a) {
			return true
		}
	}
	return false
}

// Verifier checks tokens an Issuer with the same key, service and issuer
// name signed. Safe for concurrent use.
type Verifier struct {
	key   *Key
	o     tokenOptions
	cache *lru.Cache[[sha256.Size]byte, *Grant] // nil: nothing remembered
}

// NewVerifier returns a Verifier for tokens signed with key. Options:
// WithService, WithIssuerName, WithLeeway, WithTokenCacheSize,
// WithTokenClock.
func NewVerifier(key *Key, opts ...TokenOption) (*Verifier, error) {
	o, err := newTokenOptions(key, opts)
	if err != nil {
		return nil, err
	}
	v := &Verifier{key: key, o: o}
	if o.cacheSize > 0 {
		if v.cache, err = lru.New[[sha256.Size]byte, *Grant](o.cacheSize); err != nil {
			return nil, fmt.Errorf("auth: token cache: %w", err)
		}
	}
	return v, nil
}

// Verify checks token and returns its grant. It refuses (with an error
// wrapping ErrInvalidToken) a token that is not a compact JWT of at most
// MaxTokenLen bytes, whose header alg or kid is not the key's (alg none,
// an HMAC claimed for an Ed25519 key and the like), whose signature does
// not verify, whose claims are not exactly Docker's token claims, whose
// aud is not the service or iss not the issuer name, or that is expired or
// not yet valid (beyond the leeway). A verified token is remembered, by
// the SHA-256 of its text, until it expires: verifying it again is a
// hash and a lookup.
func (v *Verifier) Verify(token string) (*Grant, error) {
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("token of %d bytes: %w", len(token), ErrInvalidToken)
	}
	now := v.o.now()
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if g, ok := v.cache.Get(sum); ok {
			if now.Before(g.ExpiresAt.Add(v.o.leeway)) {
				return g, nil
			}
			v.cache.Remove(sum)
			return nil, fmt.Errorf("token expired at %s: %w", g.ExpiresAt.UTC().Format(time.RFC3339), ErrInvalidToken)
		}
	}
	g, err := v.verify(token, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if v.cache != nil {
		v.cache.Add(sum, g)
	}
	return g, nil
}

func (v *Verifier) verify(token string, now time.Time) (*Grant, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a compact JWT")
	}
	var h header
	if err := decodePart(parts[0], &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Alg != v.key.alg || h.Kid != v.key.id || h.Typ != "JWT" {
		return nil, fmt.Errorf("header alg %.20q kid %.60q, want %s kid %s", h.Alg, h.Kid, v.key.alg, v.key.id)
	}
	sig, err := jwtB64.DecodeString(parts[2])
	if err != nil || !v.key.verify([]byte(token[:len(parts[0])+1+len(parts[1])]), sig) {
		return nil, fmt.Errorf("bad signature")
	}
	var c claims
	if err := decodePart(parts[1], &c); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return v.check(c, now)
}

// check verifies signed claims: audience, issuer, times, access list.
func (v *Verifier) check(c claims, now time.Time) (*Grant, error) {
	exp, nbf := time.Unix(c.Expiry, 0), time.Unix(c.NotBefore, 0)
	switch {
	case c.Audience != v.o.service:
		return nil, fmt.Errorf("aud %.60q, want %q", c.Audience, v.o.service)
	case c.Issuer != v.o.issuer:
		return nil, fmt.Errorf("iss %.60q, want %q", c.Issuer, v.o.issuer)
	case !now.Before(exp.Add(v.o.leeway)):
		return nil, fmt.Errorf("expired at %s", exp.UTC().Format(time.RFC3339))
	case now.Add(v.o.leeway).Before(nbf):
		return nil, fmt.Errorf("not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	g := &Grant{Subject: c.Subject, ExpiresAt: exp}
	for _, ra := range c.Access {
		if ra.Type != ScopeRepository || checkScopeName(ra.Name) != nil {
			return nil, fmt.Errorf("access entry %.60q:%.60q is not a repository", ra.Type, ra.Name)
		}
		acts, err := ParseActions(ra.Actions)
		if err != nil {
			return nil, fmt.Errorf("access entry %q: %w", ra.Name, err)
		}
		g.Access = append(g.Access, Scope{Name: ra.Name, Actions: acts})
	}
	return g, nil
}

// decodePart decodes one strict base64url JSON part into v, refusing
// unknown fields and trailing data.
func decodePart(part string, v any) error {
	raw, err := jwtB64.DecodeString(part)
	if err != nil {
		return fmt.Errorf("not base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not the expected JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON")
	}
	return nil
}
