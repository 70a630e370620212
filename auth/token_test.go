package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected clock tests move by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func edKey(t testing.TB) *Key {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token.key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hmacKey(t testing.TB, fill byte) *Key {
	t.Helper()
	k, err := ParseKey(append(bytes.Repeat([]byte{fill}, 40), '\n'))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testRules(t testing.TB) *Rules {
	t.Helper()
	r, err := NewRules(NewActions(Pull), []Rule{
		{Users: []string{"alice"}, Repositories: []string{"registry.internal/team/**"}, Actions: NewActions(Pull, Push)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pair(t testing.TB, k *Key, c *clock) (*Issuer, *Verifier) {
	t.Helper()
	is, err := NewIssuer(k, testRules(t), WithTokenClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(k, WithTokenClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	return is, v
}

func keys(t *testing.T) map[string]*Key {
	return map[string]*Key{AlgEdDSA: edKey(t), AlgHS256: hmacKey(t, 'k')}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	for alg, k := range keys(t) {
		t.Run(alg, func(t *testing.T) {
			c := &clock{t0}
			is, v := pair(t, k, c)
			tok, err := is.Issue("alice", []Scope{{"registry.internal/team/app", NewActions(Pull, Push)}})
			if err != nil {
				t.Fatal(err)
			}
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[0])
			if !strings.Contains(string(hdr), `"alg":"`+alg+`"`) || !strings.Contains(string(hdr), `"kid":"`+k.ID()+`"`) {
				t.Errorf("header %s: want alg %s and kid %s", hdr, alg, k.ID())
			}
			g, err := v.Verify(tok.Token)
			if err != nil {
				t.Fatal(err)
			}
			if g.Subject != "alice" || !g.Allows("registry.internal/team/app", Push) || !g.Allows("registry.internal/team/app", Pull) {
				t.Errorf("got %+v, want alice with pull,push on registry.internal/team/app", g)
			}
			if g.Allows("registry.internal/team/other", Pull) || g.Allows("registry.internal/team/app", Delete) {
				t.Errorf("got %+v: allows a repository or action it was not issued for", g)
			}
			if r := tok.Response(); r.Token != tok.Token || r.AccessToken != tok.Token || r.ExpiresIn != 900 || r.IssuedAt != "2026-03-01T12:00:00Z" {
				t.Errorf("response %+v", r)
			}
		})
	}
}

func TestIssueNarrowsToRules(t *testing.T) {
	c := &clock{t0}
	is, v := pair(t, edKey(t), c)
	tests := []struct {
		user  string
		ask   Scope
		grant Actions
	}{
		{"alice", Scope{"registry.internal/team/app", NewActions(Pull, Push, Delete)}, NewActions(Pull, Push)},
		{"alice", Scope{"docker.io/library/alpine", NewActions(Pull, Push)}, NewActions(Pull)}, // escalation: push where rules give pull
		{"", Scope{"registry.internal/team/app", NewActions(Push)}, 0},
		{"", Scope{"docker.io/library/alpine", NewActions(Pull, Push, Delete, Replicate)}, NewActions(Pull)},
		{"bob", Scope{"registry.internal/team/app", NewActions(Pull, Push)}, NewActions(Pull)},
	}
	for _, tt := range tests {
		tok, err := is.Issue(tt.user, []Scope{tt.ask})
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Granted[0].Actions; got != tt.grant {
			t.Errorf("%q asking %v: granted %v, want %v", tt.user, tt.ask, got, tt.grant)
		}
		g, err := v.Verify(tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []Action{Pull, Push, Delete, Replicate} {
			if got, want := g.Allows(tt.ask.Name, a), tt.grant.Has(a); got != want {
				t.Errorf("%q asking %v: token allows %v: %v, want %v", tt.user, tt.ask, a, got, want)
			}
		}
	}
}

func TestVerifyExpiry(t *testing.T) {
	for alg, k := range keys(t) {
		t.Run(alg, func(t *testing.T) {
			c := &clock{t0}
			is, v := pair(t, k, c)
			tok, _ := is.Issue("", []Scope{{"docker.io/library/alpine", NewActions(Pull)}})
			c.now = t0.Add(-time.Minute) // before nbf, beyond the leeway
			if _, err := v.Verify(tok.Token); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("before nbf: got %v, want ErrInvalidToken", err)
			}
			c.now = t0.Add(DefaultTokenExpiry + DefaultLeeway - time.Second)
			if _, err := v.Verify(tok.Token); err != nil {
				t.Errorf("within the leeway: %v", err)
			}
			c.now = t0.Add(DefaultTokenExpiry + DefaultLeeway) // cached by now: the hit path must expire it too
			if _, err := v.Verify(tok.Token); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("expired, cached: got %v, want ErrInvalidToken", err)
			}
			if _, err := v.Verify(tok.Token); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("expired, uncached: got %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifyRefusesOtherKeys(t *testing.T) {
	c := &clock{t0}
	ed, ed2, hk, hk2 := edKey(t), edKey(t), hmacKey(t, 'a'), hmacKey(t, 'b')
	scopes := []Scope{{"docker.io/library/alpine", NewActions(Pull)}}
	for _, tt := range []struct {
		name         string
		signer, with *Key
	}{{"ed25519 by another key", ed2, ed}, {"hmac by another secret", hk2, hk}, {"hmac for an ed25519 verifier", hk, ed}, {"ed25519 for an hmac verifier", ed, hk}} {
		is, _ := pair(t, tt.signer, c)
		_, v := pair(t, tt.with, c)
		tok, _ := is.Issue("", scopes)
		if _, err := v.Verify(tok.Token); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", tt.name, err)
		}
	}
}

// forge signs claims with a chosen header, as an attacker would.
func forge(t *testing.T, hdr, payload string, sign func([]byte) []byte) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}

func TestVerifyRefusesForgedAlg(t *testing.T) {
	c := &clock{t0}
	ed := edKey(t)
	is, v := pair(t, ed, c)
	tok, _ := is.Issue("", []Scope{{"docker.io/library/alpine", NewActions(Pull)}})
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[1])
	pub := ed.ed.Public().(ed25519.PublicKey)
	for name, tokStr := range map[string]string{
		// alg confusion: HMAC keyed with the (public) Ed25519 key.
		"HS256 keyed by the public key": forge(t, `{"alg":"HS256","typ":"JWT","kid":"`+ed.ID()+`"}`, string(payload),
			func(in []byte) []byte { return hmacSHA256(pub, in) }),
		"alg none": forge(t, `{"alg":"none","typ":"JWT","kid":"`+ed.ID()+`"}`, string(payload), func([]byte) []byte { return nil }),
		"alg none, no signature": strings.TrimSuffix(forge(t, `{"alg":"none","typ":"JWT","kid":"`+ed.ID()+`"}`, string(payload),
			func([]byte) []byte { return nil }), "."),
		"escalated claims, old signature": forge(t, `{"alg":"EdDSA","typ":"JWT","kid":"`+ed.ID()+`"}`,
			strings.Replace(string(payload), `["pull"]`, `["pull","push"]`, 1), func([]byte) []byte {
				sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[2])
				return sig
			}),
	} {
		if _, err := v.Verify(tokStr); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestVerifyAudience(t *testing.T) {
	c := &clock{t0}
	k := hmacKey(t, 'k')
	is, err := NewIssuer(k, testRules(t), WithService("other"), WithTokenClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	_, v := pair(t, k, c)
	tok, _ := is.Issue("", nil)
	if _, err := v.Verify(tok.Token); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token for another service: got %v, want ErrInvalidToken", err)
	}
}

func TestVerifyCacheHit(t *testing.T) {
	c := &clock{t0}
	k := edKey(t)
	is, v := pair(t, k, c)
	tok, _ := is.Issue("alice", []Scope{{"registry.internal/team/app", NewActions(Pull)}})
	g1, err := v.Verify(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if v.cache.Len() != 1 {
		t.Fatalf("cache holds %d tokens after one verification, want 1", v.cache.Len())
	}
	// A hit returns the remembered grant without checking the signature
	// again: with the key swapped out, only the cache can answer.
	v.key = hmacKey(t, 'z')
	g2, err := v.Verify(tok.Token)
	if err != nil || g2 != g1 {
		t.Errorf("second verification = %p, %v; want the cached grant %p", g2, err, g1)
	}
	if _, err := v.Verify(tok.Token + "x"); err == nil {
		t.Error("a modified token verified")
	}
}

func TestParseKey(t *testing.T) {
	for name, data := range map[string]string{
		"short secret":  strings.Repeat("s", MinHMACKeyLen-1) + "\n",
		"rsa-looking":   "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
		"garbage pem":   "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"empty":         "",
		"bare newlines": strings.Repeat("\n", 40),
	} {
		k, err := ParseKey([]byte(data))
		if name == "bare newlines" {
			// 39 bytes after the trailing newline: a (bad, but long
			// enough) secret. Only emptiness after trimming is refused.
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: got %v, want an error", name, k)
		}
		if err != nil && strings.Contains(err.Error(), "ssss") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
	if a, b := hmacKey(t, 'a'), hmacKey(t, 'a'); a.ID() != b.ID() || a.Alg() != AlgHS256 {
		t.Errorf("same secret: kids %s and %s, alg %s", a.ID(), b.ID(), a.Alg())
	}
	if s := hmacKey(t, 'q').String(); strings.Contains(s, "qqqq") {
		t.Errorf("String %q shows the secret", s)
	}
	path := filepath.Join(t.TempDir(), "k")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := GenerateKeyFile(path); err == nil {
		t.Error("GenerateKeyFile overwrote an existing file")
	}
}

func FuzzVerify(f *testing.F) {
	c := &clock{t0}
	k := hmacKey(f, 'k')
	// Signed from fixed claims, not by Issue (whose jti is random): every
	// fuzz worker must build the same token.
	signed, err := sign(k, claims{Issuer: DefaultService, Subject: "alice", Audience: DefaultService,
		Expiry: t0.Add(time.Hour).Unix(), NotBefore: t0.Unix(), IssuedAt: t0.Unix(), ID: "fuzz",
		Access: []resourceAction{{Type: ScopeRepository, Name: "registry.internal/team/app", Actions: []string{"pull", "push"}}}})
	if err != nil {
		f.Fatal(err)
	}
	tok := Issued{Token: signed}
	f.Add(tok.Token)
	f.Add(tok.Token[:len(tok.Token)-1] + "A")
	f.Add(strings.Replace(tok.Token, ".", "..", 1))
	f.Add("a.b.c")
	v, err := NewVerifier(k, WithTokenClock(c.Now))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		g, err := v.Verify(in)
		if err == nil && in != tok.Token {
			t.Fatalf("a modified token verified: %q -> %+v", in, g)
		}
	})
}

func benchVerify(b *testing.B, cacheSize int) {
	c := &clock{t0}
	k := edKey(b)
	is, err := NewIssuer(k, testRules(b), WithTokenClock(c.Now))
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(k, WithTokenClock(c.Now), WithTokenCacheSize(cacheSize))
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := is.Issue("alice", []Scope{{"registry.internal/team/app", NewActions(Pull, Push)}})
	for b.Loop() {
		if _, err := v.Verify(tok.Token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B)   { benchVerify(b, DefaultTokenCacheSize) }
func BenchmarkVerifyUncached(b *testing.B) { benchVerify(b, 0) }
