package upstream

import (
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

// algorithm is a digest's algorithm ("sha256" of "sha256:..."), for
// oci.DigestOf.
func algorithm(d string) string {
	alg, _, _ := strings.Cut(d, ":")
	return alg
}

// sameAlgorithm reports whether two digests use the same algorithm.
func sameAlgorithm(a, b string) bool {
	return algorithm(a) == algorithm(b)
}
