package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// The JWT algorithms of a Key.
const (
	AlgEdDSA = "EdDSA" // Ed25519 (RFC 8037)
	AlgHS256 = "HS256" // HMAC-SHA-256 (RFC 7518)
)

// MinHMACKeyLen is the shortest HMAC secret ParseKey accepts: 256 bits,
// the output size of SHA-256.
const MinHMACKeyLen = 32

// Key signs and verifies tokens: an Ed25519 private key (alg EdDSA) or an
// HMAC secret (alg HS256). Its ID (the JWT kid) names it without revealing
// it. A Key is immutable and safe for concurrent use; it never prints its
// secret.
type Key struct {
	alg    string
	id     string
	ed     ed25519.PrivateKey
	secret []byte
}

// LoadKey reads a key file; see ParseKey.
func LoadKey(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("auth: token key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey reads a token signing key. Data starting with "-----BEGIN" is
// PEM and must be one PKCS#8 "PRIVATE KEY" block holding an Ed25519 key
// (openssl genpkey -algorithm ed25519, or GenerateKeyFile). Anything else
// is a raw HMAC secret, used byte for byte after one trailing "\n" or
// "\r\n" is removed, of at least MinHMACKeyLen bytes (head -c 48
// /dev/urandom > token.key); a site's nodes share it to verify each
// other's tokens. Errors never quote the key.
func ParseKey(data []byte) (*Key, error) {
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN")) {
		return parseEd25519(data)
	}
	secret := bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
	if len(secret) < MinHMACKeyLen {
		return nil, fmt.Errorf("HMAC secret of %d bytes, want at least %d (or a PEM PKCS#8 Ed25519 key)", len(secret), MinHMACKeyLen)
	}
	k := &Key{alg: AlgHS256, secret: bytes.Clone(secret)}
	sum := sha256.Sum256(append([]byte("cairn token hmac kid\x00"), secret...))
	k.id = "hs-" + base64.RawURLEncoding.EncodeToString(sum[:12])
	return k, nil
}

func parseEd25519(data []byte) (*Key, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("want one PEM \"PRIVATE KEY\" block (PKCS#8 Ed25519)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("data after the PEM block")
	}
	raw, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the PEM block is not a PKCS#8 private key")
	}
	ed, ok := raw.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an Ed25519 key", raw)
	}
	return newEd25519Key(ed), nil
}

// newEd25519Key: the kid is the RFC 7638 JWK thumbprint of the public key.
func newEd25519Key(ed ed25519.PrivateKey) *Key {
	pub := ed.Public().(ed25519.PublicKey)
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return &Key{alg: AlgEdDSA, ed: ed, id: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// GenerateKeyFile writes a new Ed25519 key to path as PEM PKCS#8, mode
// 0600. It refuses to overwrite an existing file.
func GenerateKeyFile(path string) error {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ed)
	if err != nil {
		return fmt.Errorf("auth: generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auth: generate key: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auth: generate key: %w", err)
	}
	return nil
}

// Alg returns the JWT alg of tokens the key signs: AlgEdDSA or AlgHS256.
func (k *Key) Alg() string { return k.alg }

// ID returns the key's JWT kid: the JWK thumbprint of an Ed25519 public
// key, a truncated SHA-256 of an HMAC secret (prefixed "hs-").
func (k *Key) ID() string { return k.id }

// String describes the key without its secret.
func (k *Key) String() string { return "auth.Key(" + k.alg + ", kid " + k.id + ")" }

// GoString is String.
func (k *Key) GoString() string { return k.String() }

func (k *Key) sign(input []byte) []byte {
	if k.alg == AlgEdDSA {
		return ed25519.Sign(k.ed, input)
	}
	return hmacSHA256(k.secret, input)
}

func (k *Key) verify(input, sig []byte) bool {
	if k.alg == AlgEdDSA {
		return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), input, sig)
	}
	return hmacEqual(hmacSHA256(k.secret, input), sig)
}
