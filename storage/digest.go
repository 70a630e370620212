package storage

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"path/filepath"
	"strings"

	"github.com/cairn-mirror/cairn/internal/route"
)

// parsedDigest is a validated digest split into its algorithm and hex parts.
type parsedDigest struct {
	alg string // "sha256" or "sha512"
	hex string // lowercase
}

// parseDigest accepts only "sha256:<64 lowercase hex>" and
// "sha512:<128 lowercase hex>" (route.ValidDigest, cairn's one digest
// grammar), so a digest is always safe as a path.
func parseDigest(d string) (parsedDigest, error) {
	if route.ValidDigest(d) != nil {
		return parsedDigest{}, fmt.Errorf("storage: %q: %w", d, ErrInvalidDigest)
	}
	alg, h, _ := strings.Cut(d, ":")
	return parsedDigest{alg: alg, hex: h}, nil
}

func (p parsedDigest) String() string { return p.alg + ":" + p.hex }

// newHash returns a fresh hash for the digest's algorithm.
func (p parsedDigest) newHash() hash.Hash {
	if p.alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// path returns the committed file's path: <dir>/blobs/<alg>/<2 hex>/<hex>.
func (p parsedDigest) path(dataDir string) string {
	return filepath.Join(dataDir, blobsDir, p.alg, p.hex[:2], p.hex)
}

// isLowerHex reports whether s is exactly n lowercase hex characters.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Verifier hashes a blob's bytes, written to it in order, and checks them
// against the digest: for readers that see a blob outside a Writer (one
// streamed uncached when the disk is full).
type Verifier struct {
	hash.Hash
	d parsedDigest
}

// NewVerifier returns a Verifier for digest (ErrInvalidDigest if malformed).
func NewVerifier(digest string) (*Verifier, error) {
	p, err := parseDigest(digest)
	if err != nil {
		return nil, err
	}
	return &Verifier{Hash: p.newHash(), d: p}, nil
}

// Verify reports ErrDigestMismatch unless what was written hashes to the
// digest.
func (v *Verifier) Verify() error {
	if got := fmt.Sprintf("%x", v.Sum(nil)); got != v.d.hex {
		return fmt.Errorf("storage: %s: content hashes to %s:%s: %w", v.d, v.d.alg, got, ErrDigestMismatch)
	}
	return nil
}
