package config

import (
	"net/url"
	"strings"
	"time"
)

// Token enables Docker token auth (auth.token): clients get a signed,
// short-lived token from a realm cairn serves itself, and send it as a
// Bearer credential instead of their password on every request.
type Token struct {
	// Realm is the token endpoint clients are told about in the Bearer
	// challenge, an http or https URL. Empty: this node's /token, on the
	// address the client reached it by.
	Realm string `yaml:"realm,omitempty"`
	// Service names the registry in the challenge and is the tokens'
	// audience. Empty: DefaultTokenService.
	Service string `yaml:"service,omitempty"`
	// KeyFile holds the signing key: a PEM PKCS#8 Ed25519 private key, or
	// a raw HMAC secret of at least 32 bytes (HS256) shared by a site's
	// nodes. Like htpasswd_file it is a path: Validate checks that it
	// exists, the auth package reads it. Required.
	KeyFile string `yaml:"key_file"`
	// Expiry is how long an issued token lives, at most MaxTokenExpiry.
	// Zero: DefaultTokenExpiry.
	Expiry Duration `yaml:"expiry,omitempty"`
}

const (
	// DefaultTokenService is the service of the challenge and the tokens'
	// audience: what distribution's own token servers are often called.
	DefaultTokenService = "cairn"

	// DefaultTokenExpiry: a quarter hour outlives a large pull (clients
	// fetch a new token when theirs expires), and bounds how long a token
	// outlives a change to the access rules.
	DefaultTokenExpiry = 15 * time.Minute

	// MaxTokenExpiry: a token cannot be revoked; a day is the longest
	// window a stale grant may stay usable.
	MaxTokenExpiry = 24 * time.Hour
)

// ApplyDefaults fills Service and Expiry; a nil t is left alone.
// Config.ApplyDefaults is to call it for auth.token.
func (t *Token) ApplyDefaults() {
	if t == nil {
		return
	}
	setString(&t.Service, DefaultTokenService)
	setDuration(&t.Expiry, DefaultTokenExpiry)
}

// validateToken checks auth.token, when set: key_file set and existing,
// expiry in (0, MaxTokenExpiry] (zero is the default), realm an absolute
// http or https URL, service free of control characters and quotes.
func (c *Config) validateToken(p *problems) {
	t := c.Auth.Token
	if t == nil {
		return
	}
	if t.KeyFile == "" {
		p.addf("auth.token.key_file", "empty, want the signing key: a PEM PKCS#8 Ed25519 key or an HMAC secret of at least 32 bytes")
	} else {
		p.check("auth.token.key_file", checkFile(t.KeyFile))
	}
	if t.Expiry < 0 || t.Expiry.D() > MaxTokenExpiry {
		p.addf("auth.token.expiry", "got %s, want > 0 and at most %s", t.Expiry, Duration(MaxTokenExpiry))
	}
	if t.Realm != "" {
		p.check("auth.token.realm", checkRealm(t.Realm))
	}
	if !validUser(t.Service) && t.Service != "" || strings.ContainsAny(t.Service, "\"\\ ,") {
		p.addf("auth.token.service", "%q: want a name without spaces, commas, quotes, backslashes or control characters", t.Service)
	}
}

// checkRealm says why s is not an absolute http(s) URL with a host, or "".
func checkRealm(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "not a URL: " + err.Error()
	case u.Scheme != "https" && u.Scheme != "http":
		return "got scheme \"" + u.Scheme + "\", want an https or http URL"
	case u.Host == "":
		return "no host, want an absolute URL like https://mirror.example.com/token"
	case u.User != nil:
		return "holds user information; a realm is public"
	case u.Fragment != "":
		return "holds a fragment"
	}
	return ""
}
