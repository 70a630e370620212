package upstream

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// validateRepo, validateDigest and parseRef check arguments with the one
// grammar cairn has for names and references (internal/route), so nothing
// is sent upstream that the API would not have accepted.
func validateRepo(repo string) error {
	if err := route.ValidName(repo); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	return nil
}

// validateDigest accepts sha256 and sha512 digests, the ones cairn stores.
func validateDigest(d string) error {
	if err := route.ValidDigest(d); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	return nil
}

// parseRef returns the digest ref names, or "" for a tag. A string that is
// neither is ManifestUnknown: no such manifest can exist.
func parseRef(ref string) (string, error) {
	if route.IsDigest(ref) {
		if err := validateDigest(ref); err != nil {
			return "", err
		}
		return ref, nil
	}
	if route.ValidTag(ref) != nil {
		return "", fmt.Errorf("upstream: reference %q: %w", ref, ocierr.ManifestUnknown)
	}
	return "", nil
}

// digestOf hashes body with the algorithm of like ("sha256:..." or
// "sha512:..."); sha256 when like is empty.
func digestOf(body []byte, like string) string {
	if strings.HasPrefix(like, "sha512:") {
		sum := sha512.Sum512(body)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// sameAlgorithm reports whether two digests use the same algorithm.
func sameAlgorithm(a, b string) bool {
	aa, _, _ := strings.Cut(a, ":")
	ba, _, _ := strings.Cut(b, ":")
	return aa == ba
}
